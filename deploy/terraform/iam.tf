# One execution role (pull the image, write logs, read the Kafka credentials)
# and one task role per service, each naming exactly the tables, bucket
# prefix, file system and, with MSK IAM access control, the cluster, topics
# and consumer group it uses.

locals {
  # MSK IAM resource ARNs: arn:…:kafka:<region>:<account>:<kind>/<cluster name>/<cluster uuid>/<name>.
  msk_cluster_arn          = local.msk_iam ? aws_msk_cluster.votewire[0].arn : ""
  msk_resource_prefix      = local.msk_iam ? "arn:${local.partition}:kafka:${var.region}:${local.account_id}" : ""
  msk_resource_path        = local.msk_iam ? "${var.name}/${aws_msk_cluster.votewire[0].cluster_uuid}" : ""
  msk_topic_arns           = { for k, t in var.topics : k => "${local.msk_resource_prefix}:topic/${local.msk_resource_path}/${t}" }
  msk_aggregator_group_arn = "${local.msk_resource_prefix}:group/${local.msk_resource_path}/${var.name}-aggregator"
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${var.region}:${local.account_id}:*"]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy_attachment" "execution_ecr_logs" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

locals {
  # The services' credentials; the admin user's stay with the topics task.
  kafka_secret_arns = local.msk_scram ? [for u in ["ingestor", "aggregator"] : aws_secretsmanager_secret.kafka_user[u].arn] : local.create_msk ? [] : compact([var.kafka_credentials_secret_arn])
}

data "aws_iam_policy_document" "execution_secrets" {
  count = length(local.kafka_secret_arns) > 0 ? 1 : 0
  statement {
    sid       = "KafkaCredentials"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = local.kafka_secret_arns
  }
  dynamic "statement" {
    for_each = local.msk_scram ? [1] : []
    content {
      sid       = "KafkaCredentialsKey"
      actions   = ["kms:Decrypt"]
      resources = [aws_kms_key.kafka_credentials[0].arn]
    }
  }
}

resource "aws_iam_role_policy" "execution_secrets" {
  count  = length(local.kafka_secret_arns) > 0 ? 1 : 0
  name   = "kafka-credentials"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution_secrets[0].json
}

# ---------------------------------------------------------------- both services

# What both services do: send traces and metrics through the sidecar and,
# with MSK IAM access control, connect as an idempotent producer.
data "aws_iam_policy_document" "service_common" {
  statement {
    sid       = "Telemetry"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"] # X-Ray has no resource-level permissions
  }
  statement {
    sid       = "MetricsAsEmbeddedLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.metrics.arn}:*"]
  }
  dynamic "statement" {
    for_each = local.msk_iam ? [1] : []
    content {
      sid       = "KafkaConnect"
      actions   = ["kafka-cluster:Connect", "kafka-cluster:WriteDataIdempotently"]
      resources = [local.msk_cluster_arn]
    }
  }
  # Every service checks all seven declared topics at start (partitions,
  # replication, cleanup policy: votewire_core::topics); reading their
  # metadata and settings is all it may do to the ones it does not use.
  dynamic "statement" {
    for_each = local.msk_iam ? [1] : []
    content {
      sid       = "KafkaDescribeTopics"
      actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:DescribeTopicDynamicConfiguration"]
      resources = values(local.msk_topic_arns)
    }
  }
}

# ---------------------------------------------------------------- ingestor

data "aws_iam_policy_document" "ingestor" {
  source_policy_documents = [data.aws_iam_policy_document.service_common.json]
  statement {
    sid = "FeedState"
    actions = [
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:Query",
      "dynamodb:Scan",
    ]
    resources = [
      aws_dynamodb_table.feeds.arn,
      aws_dynamodb_table.feed_events.arn,
      aws_dynamodb_table.instances.arn,
    ]
  }
  dynamic "statement" {
    for_each = local.msk_iam ? [1] : []
    content {
      sid       = "KafkaWrite"
      actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"]
      resources = [for t in ["votes", "snapshots", "feed_status", "dlq"] : local.msk_topic_arns[t]]
    }
  }
  statement {
    sid       = "RawArchive"
    actions   = ["s3:PutObject", "s3:GetObject"]
    resources = ["${aws_s3_bucket.archive.arn}/raw/*"]
  }
  statement {
    sid       = "FeedRegistry"
    actions   = ["elasticfilesystem:ClientMount"]
    resources = [aws_efs_file_system.feeds.arn]
    condition {
      test     = "StringEquals"
      variable = "elasticfilesystem:AccessPointArn"
      values   = [aws_efs_access_point.feeds.arn]
    }
  }
}

resource "aws_iam_role" "ingestor" {
  name               = "${var.name}-ingestor"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "ingestor" {
  name   = "ingestor"
  role   = aws_iam_role.ingestor.id
  policy = data.aws_iam_policy_document.ingestor.json
}

# ---------------------------------------------------------------- aggregator

# The aggregator calls no AWS data API: beyond the common part, only its
# topics and its consumer group (MSK IAM).
data "aws_iam_policy_document" "aggregator" {
  source_policy_documents = [data.aws_iam_policy_document.service_common.json]
  dynamic "statement" {
    for_each = local.msk_iam ? {
      KafkaReadVotes    = { actions = ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"], resources = [local.msk_topic_arns["votes"]] }
      KafkaWriteResults = { actions = ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"], resources = [local.msk_topic_arns["results"], local.msk_topic_arns["results_test"], local.msk_topic_arns["dlq"], local.msk_topic_arns["alerts"]] }
      KafkaGroup        = { actions = ["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"], resources = [local.msk_aggregator_group_arn] }
    } : {}
    content {
      sid       = statement.key
      actions   = statement.value.actions
      resources = statement.value.resources
    }
  }
}

resource "aws_iam_role" "aggregator" {
  name               = "${var.name}-aggregator"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "aggregator" {
  name   = "aggregator"
  role   = aws_iam_role.aggregator.id
  policy = data.aws_iam_policy_document.aggregator.json
}

# ---------------------------------------------------------------- topics (one-off)

# `votewire topics ensure`. With SCRAM it signs in as the Kafka admin user,
# through its own execution role, the only one that can read the admin
# credentials. With MSK IAM it needs no secret: its task role (`topics`,
# below) may create and describe votewire's topics.
resource "aws_iam_role" "admin_execution" {
  count              = local.msk_scram ? 1 : 0
  name               = "${var.name}-admin-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy_attachment" "admin_execution_ecr_logs" {
  count      = local.msk_scram ? 1 : 0
  role       = aws_iam_role.admin_execution[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "admin_secret" {
  count = local.msk_scram ? 1 : 0
  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.kafka_user["admin"].arn]
  }
  statement {
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.kafka_credentials[0].arn]
  }
}

resource "aws_iam_role_policy" "admin_secret" {
  count  = local.msk_scram ? 1 : 0
  name   = "kafka-admin-credentials"
  role   = aws_iam_role.admin_execution[0].id
  policy = data.aws_iam_policy_document.admin_secret[0].json
}

# With MSK IAM access control, `votewire topics ensure` signs in as this
# role: it may create and describe votewire's topics and nothing else.
data "aws_iam_policy_document" "topics" {
  count = local.msk_iam ? 1 : 0
  statement {
    sid = "KafkaConnect"
    # DescribeClusterDynamicConfiguration: the cluster's min.insync.replicas,
    # which a new topic's replication factor is checked against.
    actions = [
      "kafka-cluster:Connect",
      "kafka-cluster:DescribeCluster",
      "kafka-cluster:DescribeClusterDynamicConfiguration",
    ]
    resources = [local.msk_cluster_arn]
  }
  statement {
    sid = "KafkaTopics"
    actions = [
      "kafka-cluster:CreateTopic",
      "kafka-cluster:DescribeTopic",
      "kafka-cluster:DescribeTopicDynamicConfiguration",
    ]
    resources = values(local.msk_topic_arns)
  }
}

resource "aws_iam_role" "topics" {
  count              = local.msk_iam ? 1 : 0
  name               = "${var.name}-topics"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "topics" {
  count  = local.msk_iam ? 1 : 0
  name   = "topics"
  role   = aws_iam_role.topics[0].id
  policy = data.aws_iam_policy_document.topics[0].json
}
