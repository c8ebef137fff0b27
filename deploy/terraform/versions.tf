# votewire on AWS: MSK (or your own Kafka), DynamoDB, S3, ECS Fargate.
# See docs/deploy.md for what each part is sized from and what CI checks here.
terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.70"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = local.tags
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  tags = merge({ "app" = var.name, "environment" = var.environment }, var.tags)
  # The Kafka cluster votewire talks to: the one created here, or yours.
  create_msk       = var.kafka_bootstrap_servers == ""
  msk_iam          = local.create_msk && var.msk_auth == "iam"
  msk_scram        = local.create_msk && var.msk_auth == "scram"
  kafka_bootstrap  = !local.create_msk ? var.kafka_bootstrap_servers : local.msk_iam ? aws_msk_cluster.votewire[0].bootstrap_brokers_sasl_iam : aws_msk_cluster.votewire[0].bootstrap_brokers_sasl_scram
  account_id       = data.aws_caller_identity.current.account_id
  partition        = data.aws_partition.current.partition
  ingestor_tasks   = max(var.ingestor_min_tasks, ceil(var.expected_feeds / var.feeds_per_ingestor))
}
