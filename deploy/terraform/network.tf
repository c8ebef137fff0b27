# Security groups: the tasks reach the brokers and EFS; nothing reaches the tasks
# (they only call out: feeds, Kafka, DynamoDB, S3, CloudWatch).

resource "aws_security_group" "tasks" {
  name        = "${var.name}-tasks"
  description = "votewire ingestor and aggregator tasks"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_egress_rule" "tasks_out" {
  security_group_id = aws_security_group.tasks.id
  description       = "feeds (HTTPS, SFTP), AWS APIs and the brokers"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_security_group" "brokers" {
  count       = local.create_msk ? 1 : 0
  name        = "${var.name}-msk"
  description = "MSK brokers: SASL over TLS from the tasks only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "brokers_from_tasks" {
  count                        = local.create_msk ? 1 : 0
  security_group_id            = aws_security_group.brokers[0].id
  # MSK's listeners: 9098 for IAM, 9096 for SASL/SCRAM.
  description                  = local.msk_iam ? "SASL/IAM TLS listener" : "SASL/SCRAM TLS listener"
  ip_protocol                  = "tcp"
  from_port                    = local.msk_iam ? 9098 : 9096
  to_port                      = local.msk_iam ? 9098 : 9096
  referenced_security_group_id = aws_security_group.tasks.id
}

resource "aws_security_group" "efs" {
  name        = "${var.name}-efs"
  description = "The feed registry's file system, from the tasks only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "efs_from_tasks" {
  security_group_id            = aws_security_group.efs.id
  description                  = "NFS"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.tasks.id
}
