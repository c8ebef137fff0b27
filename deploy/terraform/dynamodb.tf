# Feed state (ingestors/src/state/dynamodb.rs): the same three tables the ingestors
# create for themselves on the local stack, here with point-in-time recovery,
# on-demand capacity and the feed_events TTL.

resource "aws_dynamodb_table" "feeds" {
  name         = "${var.table_prefix}feeds"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "feed_id"
  attribute {
    name = "feed_id"
    type = "S"
  }
  point_in_time_recovery {
    enabled = true
  }
  server_side_encryption {
    enabled = true
  }
  deletion_protection_enabled = true
}

resource "aws_dynamodb_table" "feed_events" {
  name         = "${var.table_prefix}feed_events"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "feed_id"
  range_key    = "sk"
  attribute {
    name = "feed_id"
    type = "S"
  }
  attribute {
    name = "sk"
    type = "S"
  }
  # Every health transition expires 30 days after it happened.
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }
  point_in_time_recovery {
    enabled = true
  }
  server_side_encryption {
    enabled = true
  }
  deletion_protection_enabled = true
}

resource "aws_dynamodb_table" "instances" {
  name         = "${var.table_prefix}instances"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "instance_id"
  attribute {
    name = "instance_id"
    type = "S"
  }
  point_in_time_recovery {
    enabled = true
  }
  server_side_encryption {
    enabled = true
  }
}
