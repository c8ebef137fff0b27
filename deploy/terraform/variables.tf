variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "votewire"
}

variable "environment" {
  description = "Environment tag, e.g. prod or rehearsal."
  type        = string
  default     = "prod"
}

variable "region" {
  description = "AWS region."
  type        = string
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}

variable "vpc_id" {
  description = "The VPC the services run in."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (one per availability zone, at least two) for brokers, tasks and EFS."
  type        = list(string)
  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "Give at least two private subnets in different availability zones."
  }
}

variable "image" {
  description = "The votewire image (deploy/Dockerfile), e.g. <account>.dkr.ecr.<region>.amazonaws.com/votewire:<tag>."
  type        = string
}

# ---------------------------------------------------------------- Kafka

variable "kafka_bootstrap_servers" {
  description = "Bring your own Kafka: its bootstrap servers. Empty creates an MSK cluster."
  type        = string
  default     = ""
}

variable "msk_auth" {
  description = "How the services sign in to the MSK cluster this creates: iam (IAM access control: each task role names exactly its topic and group ARNs; votewire signs the tokens, kafka.msk_iam_region) or scram (one SASL/SCRAM user per service in Secrets Manager; topic permissions are Kafka ACLs, the kafka_acls output)."
  type        = string
  default     = "iam"
  validation {
    condition     = contains(["iam", "scram"], var.msk_auth)
    error_message = "msk_auth is iam or scram."
  }
}

variable "kafka_properties" {
  description = "librdkafka properties for your own Kafka (security.protocol, sasl.mechanisms, ...). Credentials go in kafka_credentials_secret_arn, never here."
  type        = map(string)
  default     = {}
}

variable "kafka_credentials_secret_arn" {
  description = "With your own Kafka: a Secrets Manager secret with JSON keys username and password (SASL). Empty: no SASL credentials."
  type        = string
  default     = ""
}

variable "msk_kafka_version" {
  description = "MSK Kafka version."
  type        = string
  default     = "3.7.x"
}

variable "msk_broker_instance_type" {
  description = "MSK broker size."
  type        = string
  default     = "kafka.m7g.large"
}

variable "msk_brokers" {
  description = "MSK broker count (a multiple of the subnet count)."
  type        = number
  default     = 3
}

variable "msk_volume_gb" {
  description = "EBS storage per broker, in GiB."
  type        = number
  default     = 500
}

variable "topics" {
  description = "Topic names, as the services' VOTEWIRE_TOPIC_* variables."
  type        = map(string)
  default = {
    votes        = "votewire.votes.v1"
    snapshots    = "votewire.snapshots.v1"
    results      = "votewire.results.v1"
    results_test = "votewire.results-test.v1"
    feed_status  = "votewire.feed-status.v1"
    dlq          = "votewire.dlq.v1"
    alerts       = "votewire.alerts.v1"
  }
}

variable "contest_partitions" {
  description = "Partitions of the votes and results topics: the most aggregator tasks that can share the work (docs/deploy.md)."
  type        = number
  default     = 48
}

variable "other_partitions" {
  description = "Partitions of the snapshots, feed-status and dead-letter topics."
  type        = number
  default     = 6
}

variable "replication_factor" {
  description = "Replication factor of votewire's topics: at least the cluster's min.insync.replicas (2 here) and at most msk_brokers; `votewire topics ensure` refuses anything else."
  type        = number
  default     = 3
}

variable "topic_config" {
  description = "Topic-level settings for every votewire topic (retention.ms, min.compaction.lag.ms, ...), as VOTEWIRE_TOPICS_CONFIG_* variables; cleanup.policy is votewire's to set."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------- state and archive

variable "table_prefix" {
  description = "Prefix of the DynamoDB tables (VOTEWIRE_TABLE_PREFIX)."
  type        = string
  default     = "votewire_"
}

variable "archive_retention_days" {
  description = "Days raw payloads stay in the archive bucket."
  type        = number
  default     = 400
}

# ---------------------------------------------------------------- services

variable "expected_feeds" {
  description = "Feeds expected on the night: sets the ingestors' starting count."
  type        = number
  default     = 600
}

variable "feeds_per_ingestor" {
  description = "Feeds one ingestor task owns at the autoscaling target (docs/deploy.md: measured on 2 vCPU)."
  type        = number
  default     = 250
}

variable "ingestor_min_tasks" {
  description = "Fewest ingestor tasks (two: a lease moves when one dies)."
  type        = number
  default     = 2
}

variable "ingestor_max_tasks" {
  description = "Most ingestor tasks."
  type        = number
  default     = 40
}

variable "ingestor_cpu" {
  description = "Ingestor task CPU units."
  type        = number
  default     = 2048
}

variable "ingestor_memory" {
  description = "Ingestor task memory, MiB."
  type        = number
  default     = 4096
}

variable "aggregator_min_tasks" {
  description = "Fewest aggregator tasks."
  type        = number
  default     = 2
}

variable "aggregator_max_tasks" {
  description = "Most aggregator tasks (no more than contest_partitions can have work)."
  type        = number
  default     = 24
}

variable "aggregator_lag_per_task" {
  description = "Autoscaling target: unconsumed vote cells per aggregator task."
  type        = number
  default     = 100000
}

variable "aggregator_cpu" {
  description = "Aggregator task CPU units."
  type        = number
  default     = 2048
}

variable "aggregator_memory" {
  description = "Aggregator task memory, MiB (it holds its partitions' current cells)."
  type        = number
  default     = 8192
}

variable "otel_collector_image" {
  description = "The OpenTelemetry collector sidecar (AWS Distro): traces to X-Ray, metrics to CloudWatch (EMF)."
  type        = string
  default     = "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3"
}

variable "log_retention_days" {
  description = "CloudWatch log retention."
  type        = number
  default     = 30
}
