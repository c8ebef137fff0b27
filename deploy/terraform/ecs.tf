# The two services on Fargate, each task a votewire container plus the
# collector sidecar. Both stop gracefully on SIGTERM within stopTimeout: the
# ingestor releases its leases, the aggregator leaves its group.

resource "aws_ecs_cluster" "votewire" {
  name = var.name
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_cloudwatch_log_group" "service" {
  for_each          = toset(["ingestor", "aggregator", "topics", "otel"])
  name              = "/${var.name}/${each.key}"
  retention_in_days = var.log_retention_days
}

resource "aws_cloudwatch_log_group" "metrics" {
  # The collector's embedded-metric-format logs (otel-collector.yaml).
  name              = "/votewire/metrics"
  retention_in_days = var.log_retention_days
}

locals {
  # Environment every votewire process gets (`votewire config env` lists them).
  common_environment = concat(
    [
      { name = "VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS", value = local.kafka_bootstrap },
      { name = "VOTEWIRE_AWS_REGION", value = var.region },
      { name = "VOTEWIRE_TABLE_PREFIX", value = var.table_prefix },
      { name = "VOTEWIRE_ARCHIVE_S3_BUCKET", value = aws_s3_bucket.archive.bucket },
      { name = "VOTEWIRE_OTLP_ENDPOINT", value = "http://127.0.0.1:4317" },
      { name = "VOTEWIRE_TOPIC_VOTES", value = var.topics["votes"] },
      { name = "VOTEWIRE_TOPIC_SNAPSHOTS", value = var.topics["snapshots"] },
      { name = "VOTEWIRE_TOPIC_RESULTS", value = var.topics["results"] },
      { name = "VOTEWIRE_TOPIC_RESULTS_TEST", value = var.topics["results_test"] },
      { name = "VOTEWIRE_TOPIC_FEED_STATUS", value = var.topics["feed_status"] },
      { name = "VOTEWIRE_TOPIC_DLQ", value = var.topics["dlq"] },
      { name = "VOTEWIRE_TOPIC_ALERTS", value = var.topics["alerts"] },
      # The topics' shapes: `topics ensure` creates them so, and every service
      # at start checks the topics against them.
      { name = "VOTEWIRE_TOPICS_CONTEST_PARTITIONS", value = tostring(var.contest_partitions) },
      { name = "VOTEWIRE_TOPICS_OTHER_PARTITIONS", value = tostring(var.other_partitions) },
      { name = "VOTEWIRE_TOPICS_REPLICATION_FACTOR", value = tostring(var.replication_factor) },
    ],
    [for k, v in var.topic_config : { name = "VOTEWIRE_TOPICS_CONFIG_${upper(replace(k, ".", "_"))}", value = v }],
    local.msk_iam ? [
      # SASL_SSL + OAUTHBEARER, tokens signed with the task role.
      { name = "VOTEWIRE_KAFKA_MSK_IAM_REGION", value = var.region },
      ] : local.msk_scram ? [
      { name = "VOTEWIRE_KAFKA_PROPERTY_SECURITY_PROTOCOL", value = "SASL_SSL" },
      { name = "VOTEWIRE_KAFKA_PROPERTY_SASL_MECHANISMS", value = "SCRAM-SHA-512" },
      ] : [
      for k, v in var.kafka_properties : { name = "VOTEWIRE_KAFKA_PROPERTY_${upper(replace(k, ".", "_"))}", value = v }
    ],
  )
  # SASL credentials as secret environment variables, per service (none
  # with MSK IAM: the task role is the credential).
  kafka_secrets = {
    for svc in ["ingestor", "aggregator", "admin"] : svc => (
      local.msk_iam ? [] : local.msk_scram ? [
        { name = "VOTEWIRE_KAFKA_PROPERTY_SASL_USERNAME", valueFrom = "${aws_secretsmanager_secret.kafka_user[svc].arn}:username::" },
        { name = "VOTEWIRE_KAFKA_PROPERTY_SASL_PASSWORD", valueFrom = "${aws_secretsmanager_secret.kafka_user[svc].arn}:password::" },
        ] : var.kafka_credentials_secret_arn == "" ? [] : [
        { name = "VOTEWIRE_KAFKA_PROPERTY_SASL_USERNAME", valueFrom = "${var.kafka_credentials_secret_arn}:username::" },
        { name = "VOTEWIRE_KAFKA_PROPERTY_SASL_PASSWORD", valueFrom = "${var.kafka_credentials_secret_arn}:password::" },
      ]
    )
  }
  collector = {
    name        = "otel-collector"
    image       = var.otel_collector_image
    essential   = false # without it votewire runs on and counts dropped spans
    environment = [{ name = "AOT_CONFIG_CONTENT", value = file("${path.module}/otel-collector.yaml") }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = aws_cloudwatch_log_group.service["otel"].name
        "awslogs-region"        = var.region
        "awslogs-stream-prefix" = "otel"
      }
    }
  }
  log_options = {
    for svc in ["ingestor", "aggregator", "topics"] : svc => {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = aws_cloudwatch_log_group.service[svc].name
        "awslogs-region"        = var.region
        "awslogs-stream-prefix" = svc
      }
    }
  }
}

resource "aws_ecs_task_definition" "ingestor" {
  family                   = "${var.name}-ingestor"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.ingestor_cpu
  memory                   = var.ingestor_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.ingestor.arn
  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }
  volume {
    name = "feeds"
    efs_volume_configuration {
      file_system_id     = aws_efs_file_system.feeds.id
      transit_encryption = "ENABLED"
      authorization_config {
        access_point_id = aws_efs_access_point.feeds.id
        iam             = "ENABLED"
      }
    }
  }
  container_definitions = jsonencode([
    {
      name        = "votewire"
      image       = var.image
      essential   = true
      command     = ["ingest", "--feeds", "/etc/votewire/feeds"]
      stopTimeout = 30
      environment = concat(local.common_environment, [
        { name = "OTEL_SERVICE_NAME", value = "votewire-ingestor" },
      ])
      secrets          = local.kafka_secrets["ingestor"]
      mountPoints      = [{ sourceVolume = "feeds", containerPath = "/etc/votewire/feeds", readOnly = true }]
      logConfiguration = local.log_options["ingestor"]
    },
    local.collector,
  ])
}

resource "aws_ecs_task_definition" "aggregator" {
  family                   = "${var.name}-aggregator"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.aggregator_cpu
  memory                   = var.aggregator_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.aggregator.arn
  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }
  container_definitions = jsonencode([
    {
      name        = "votewire"
      image       = var.image
      essential   = true
      command     = ["aggregate", "--group", "${var.name}-aggregator"]
      stopTimeout = 30
      environment = concat(local.common_environment, [
        { name = "OTEL_SERVICE_NAME", value = "votewire-aggregator" },
      ])
      secrets          = local.kafka_secrets["aggregator"]
      logConfiguration = local.log_options["aggregator"]
    },
    local.collector,
  ])
}

# One-off: `aws ecs run-task` it (the `run_topics_ensure` output) before the
# services start and after changing partitions.
resource "aws_ecs_task_definition" "topics" {
  family                   = "${var.name}-topics"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 256
  memory                   = 512
  execution_role_arn       = local.msk_scram ? aws_iam_role.admin_execution[0].arn : aws_iam_role.execution.arn
  task_role_arn            = local.msk_iam ? aws_iam_role.topics[0].arn : null
  container_definitions = jsonencode([
    {
      name      = "votewire"
      image     = var.image
      essential = true
      command   = ["topics", "ensure"]
      environment = concat(local.common_environment, [
        { name = "VOTEWIRE_KAFKA_PROPERTY_REQUEST_TIMEOUT_MS", value = "30000" },
      ])
      secrets          = local.kafka_secrets[local.msk_scram ? "admin" : "ingestor"]
      logConfiguration = local.log_options["topics"]
    },
  ])
}

resource "aws_ecs_service" "ingestor" {
  name            = "${var.name}-ingestor"
  cluster         = aws_ecs_cluster.votewire.id
  task_definition = aws_ecs_task_definition.ingestor.arn
  launch_type     = "FARGATE"
  desired_count   = local.ingestor_tasks
  # A new task takes leases as old ones release theirs: never fewer than now.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }
  lifecycle {
    ignore_changes = [desired_count] # autoscaling owns it
  }
  depends_on = [aws_efs_mount_target.feeds]
}

resource "aws_ecs_service" "aggregator" {
  name                               = "${var.name}-aggregator"
  cluster                            = aws_ecs_cluster.votewire.id
  task_definition                    = aws_ecs_task_definition.aggregator.arn
  launch_type                        = "FARGATE"
  desired_count                      = var.aggregator_min_tasks
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }
  lifecycle {
    ignore_changes = [desired_count]
  }
}
