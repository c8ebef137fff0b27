# The feed registry: a directory of feed files the ingestors follow (and the
# operator API writes, atomically). Read-only for the ingestors, through an
# access point, with IAM authorization and TLS.

resource "aws_efs_file_system" "feeds" {
  creation_token = "${var.name}-feeds"
  encrypted      = true
}

resource "aws_efs_mount_target" "feeds" {
  for_each        = toset(var.private_subnet_ids)
  file_system_id  = aws_efs_file_system.feeds.id
  subnet_id       = each.value
  security_groups = [aws_security_group.efs.id]
}

resource "aws_efs_access_point" "feeds" {
  file_system_id = aws_efs_file_system.feeds.id
  # The image's user (deploy/Dockerfile: uid 10001).
  posix_user {
    uid = 10001
    gid = 10001
  }
  root_directory {
    path = "/feeds"
    creation_info {
      owner_uid   = 10001
      owner_gid   = 10001
      permissions = "0755"
    }
  }
}
