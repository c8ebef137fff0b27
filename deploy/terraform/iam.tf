# One execution role (pull the image, write logs, read the Kafka credentials)
# and one task role per service, each naming exactly the tables, bucket
# prefix, file system and topics it uses.

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
  kafka_secret_arns = local.create_msk ? [for u in ["ingestor", "aggregator"] : aws_secretsmanager_secret.kafka_user[u].arn] : compact([var.kafka_credentials_secret_arn])
}

data "aws_iam_policy_document" "execution_secrets" {
  count = length(local.kafka_secret_arns) > 0 ? 1 : 0
  statement {
    sid       = "KafkaCredentials"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = local.kafka_secret_arns
  }
  dynamic "statement" {
    for_each = local.create_msk ? [1] : []
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

# ---------------------------------------------------------------- ingestor

data "aws_iam_policy_document" "ingestor" {
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

data "aws_iam_policy_document" "aggregator" {
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

# `votewire topics ensure` as the Kafka admin user: its own execution role,
# the only one that can read the admin credentials. No task role: it calls
# no AWS API.
resource "aws_iam_role" "admin_execution" {
  count              = local.create_msk ? 1 : 0
  name               = "${var.name}-admin-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy_attachment" "admin_execution_ecr_logs" {
  count      = local.create_msk ? 1 : 0
  role       = aws_iam_role.admin_execution[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "admin_secret" {
  count = local.create_msk ? 1 : 0
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
  count  = local.create_msk ? 1 : 0
  name   = "kafka-admin-credentials"
  role   = aws_iam_role.admin_execution[0].id
  policy = data.aws_iam_policy_document.admin_secret[0].json
}
