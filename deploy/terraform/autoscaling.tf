# Ingestors scale on feeds per task, aggregators on unconsumed cells per
# task. Both metrics come from votewire itself through the collector
# (otel-collector.yaml): each task reports its own value every 10 s, so the
# Average over tasks is the per-task load the target is set in.

resource "aws_appautoscaling_target" "ingestor" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.votewire.name}/${aws_ecs_service.ingestor.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.ingestor_min_tasks
  max_capacity       = var.ingestor_max_tasks
}

resource "aws_appautoscaling_policy" "ingestor_feeds" {
  name               = "${var.name}-ingestor-feeds-per-task"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.ingestor.service_namespace
  resource_id        = aws_appautoscaling_target.ingestor.resource_id
  scalable_dimension = aws_appautoscaling_target.ingestor.scalable_dimension
  target_tracking_scaling_policy_configuration {
    target_value = var.feeds_per_ingestor
    customized_metric_specification {
      namespace   = "votewire"
      metric_name = "votewire.ingest.feeds_owned"
      statistic   = "Average"
      dimensions {
        name  = "service.name"
        value = "votewire-ingestor"
      }
    }
    # Leases move within one lease TTL; scale in slowly, out fast.
    scale_out_cooldown = 60
    scale_in_cooldown  = 600
  }
}

resource "aws_appautoscaling_target" "aggregator" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.votewire.name}/${aws_ecs_service.aggregator.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.aggregator_min_tasks
  max_capacity       = min(var.aggregator_max_tasks, var.contest_partitions)
}

resource "aws_appautoscaling_policy" "aggregator_lag" {
  name               = "${var.name}-aggregator-lag-per-task"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.aggregator.service_namespace
  resource_id        = aws_appautoscaling_target.aggregator.resource_id
  scalable_dimension = aws_appautoscaling_target.aggregator.scalable_dimension
  target_tracking_scaling_policy_configuration {
    target_value = var.aggregator_lag_per_task
    customized_metric_specification {
      namespace   = "votewire"
      metric_name = "votewire.aggregator.lag.total"
      statistic   = "Average"
      dimensions {
        name  = "service.name"
        value = "votewire-aggregator"
      }
    }
    # A joining member rebuilds its partitions from the compacted topic:
    # scale out early, and in only after a quiet stretch.
    scale_out_cooldown = 60
    scale_in_cooldown  = 900
  }
}
