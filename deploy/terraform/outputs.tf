output "kafka_bootstrap_servers" {
  description = "What the services connect to (SASL/SCRAM over TLS on MSK)."
  value       = local.kafka_bootstrap
}

output "ecs_cluster" {
  description = "The ECS cluster running both services."
  value       = aws_ecs_cluster.votewire.name
}

output "services" {
  description = "The ingestor and aggregator service names."
  value       = { ingestor = aws_ecs_service.ingestor.name, aggregator = aws_ecs_service.aggregator.name }
}

output "state_tables" {
  description = "The DynamoDB feed-state tables."
  value       = [aws_dynamodb_table.feeds.name, aws_dynamodb_table.feed_events.name, aws_dynamodb_table.instances.name]
}

output "archive_bucket" {
  description = "The raw payload archive (VOTEWIRE_ARCHIVE_S3_BUCKET)."
  value       = aws_s3_bucket.archive.bucket
}

output "feed_registry_file_system" {
  description = "The EFS file system holding the feed registry (mount it, or point `votewire api` at it, to add feeds)."
  value       = aws_efs_file_system.feeds.id
}

output "run_topics_ensure" {
  description = "Creates or checks the topics; run before the services start."
  value       = "aws ecs run-task --cluster ${aws_ecs_cluster.votewire.name} --launch-type FARGATE --task-definition ${aws_ecs_task_definition.topics.family} --network-configuration 'awsvpcConfiguration={subnets=[${join(",", var.private_subnet_ids)}],securityGroups=[${aws_security_group.tasks.id}]}'"
}

output "kafka_acls" {
  description = "With MSK and msk_auth = scram: the ACLs that give each service exactly its topics (run with the admin user's client properties, docs/deploy.md). Empty with IAM access control, where the task roles name the topics."
  value = !local.msk_scram ? "" : join("\n", concat(
    [for t in ["votes", "snapshots", "feed_status", "dlq"] :
    "kafka-acls.sh --bootstrap-server $BOOTSTRAP --command-config admin.properties --add --allow-principal User:${var.name}-ingestor --operation Write --operation Describe --topic ${var.topics[t]}"],
    [
      "kafka-acls.sh --bootstrap-server $BOOTSTRAP --command-config admin.properties --add --allow-principal User:${var.name}-ingestor --operation IdempotentWrite --cluster",
      "kafka-acls.sh --bootstrap-server $BOOTSTRAP --command-config admin.properties --add --allow-principal User:${var.name}-aggregator --operation Read --operation Describe --topic ${var.topics["votes"]}",
      "kafka-acls.sh --bootstrap-server $BOOTSTRAP --command-config admin.properties --add --allow-principal User:${var.name}-aggregator --operation Write --operation Describe --topic ${var.topics["results"]} --topic ${var.topics["results_test"]} --topic ${var.topics["dlq"]} --topic ${var.topics["alerts"]}",
      "kafka-acls.sh --bootstrap-server $BOOTSTRAP --command-config admin.properties --add --allow-principal User:${var.name}-aggregator --operation Read --operation Describe --group ${var.name}-aggregator",
      "kafka-acls.sh --bootstrap-server $BOOTSTRAP --command-config admin.properties --add --allow-principal User:${var.name}-aggregator --operation IdempotentWrite --cluster",
    ],
  ))
}
