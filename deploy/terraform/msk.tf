# MSK, unless kafka_bootstrap_servers names your own cluster. Clients speak
# TLS and sign in one of two ways (var.msk_auth):
# - iam (default): IAM access control. votewire signs an OAUTHBEARER token
#   with the task role's credentials (VOTEWIRE_KAFKA_MSK_IAM_REGION), and
#   each role's policy names exactly its cluster, topic and group ARNs
#   (iam.tf). No Kafka password exists.
# - scram: SASL/SCRAM, one user per service plus an admin (topics, ACLs);
#   the credentials live in Secrets Manager under the AmazonMSK_ prefix MSK
#   requires, encrypted with a key of their own, and reach the tasks as
#   secret environment variables. Each service's topics are closed to
#   everyone else by Kafka ACLs: the `kafka_acls` output is the script that
#   sets them (docs/deploy.md).

locals {
  kafka_users = local.msk_scram ? toset(["admin", "ingestor", "aggregator"]) : toset([])
}

resource "aws_kms_key" "kafka_credentials" {
  count               = local.msk_scram ? 1 : 0
  description         = "${var.name}: the MSK SCRAM credentials"
  enable_key_rotation = true
}

resource "aws_secretsmanager_secret" "kafka_user" {
  for_each   = local.kafka_users
  name       = "AmazonMSK_${var.name}_${each.key}"
  kms_key_id = aws_kms_key.kafka_credentials[0].arn
}

resource "random_password" "kafka_user" {
  for_each = local.kafka_users
  length   = 40
  special  = false
}

resource "aws_secretsmanager_secret_version" "kafka_user" {
  for_each      = local.kafka_users
  secret_id     = aws_secretsmanager_secret.kafka_user[each.key].id
  secret_string = jsonencode({ username = "${var.name}-${each.key}", password = random_password.kafka_user[each.key].result })
}

resource "aws_msk_configuration" "votewire" {
  count          = local.create_msk ? 1 : 0
  name           = "${var.name}-brokers"
  kafka_versions = [var.msk_kafka_version]
  # Topics are created by `votewire topics ensure` with their declared shapes
  # (compaction, partitions); nothing is created by accident. Three copies,
  # two in sync before an ack (the producers use acks=all and idempotence).
  server_properties = <<-PROPERTIES
    auto.create.topics.enable=false
    default.replication.factor=3
    min.insync.replicas=2
    unclean.leader.election.enable=false
    allow.everyone.if.no.acl.found=true
  PROPERTIES
}

resource "aws_msk_cluster" "votewire" {
  count                  = local.create_msk ? 1 : 0
  cluster_name           = var.name
  kafka_version          = var.msk_kafka_version
  number_of_broker_nodes = var.msk_brokers

  broker_node_group_info {
    instance_type   = var.msk_broker_instance_type
    client_subnets  = var.private_subnet_ids
    security_groups = [aws_security_group.brokers[0].id]
    storage_info {
      ebs_storage_info {
        volume_size = var.msk_volume_gb
      }
    }
  }

  client_authentication {
    sasl {
      iam   = local.msk_iam
      scram = local.msk_scram
    }
  }

  encryption_info {
    encryption_in_transit {
      client_broker = "TLS"
      in_cluster    = true
    }
  }

  configuration_info {
    arn      = aws_msk_configuration.votewire[0].arn
    revision = aws_msk_configuration.votewire[0].latest_revision
  }

  # Consumer lag (MaxOffsetLag, SumOffsetLag) per group and topic.
  enhanced_monitoring = "PER_TOPIC_PER_PARTITION"

  logging_info {
    broker_logs {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.msk[0].name
      }
    }
  }
}

resource "aws_msk_scram_secret_association" "votewire" {
  count           = local.msk_scram ? 1 : 0
  cluster_arn     = aws_msk_cluster.votewire[0].arn
  secret_arn_list = [for u in local.kafka_users : aws_secretsmanager_secret.kafka_user[u].arn]
  depends_on      = [aws_secretsmanager_secret_version.kafka_user]
}

resource "aws_cloudwatch_log_group" "msk" {
  count             = local.create_msk ? 1 : 0
  name              = "/${var.name}/msk"
  retention_in_days = var.log_retention_days
}
