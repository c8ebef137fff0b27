//! Every votewire integration test, compiled into one test binary so CI links
//! (and stores) one executable instead of one per file. Each module is one
//! area; nextest still runs every test in its own process.

mod aggregate;
mod ap_feed;
mod architecture;
mod archive_s3;
mod cadence;
mod clarity_feed;
mod clarity_source;
mod compaction;
mod compose;
mod disagreement;
mod dynamodb;
mod feed_state;
mod feed_status;
mod group_restart;
mod harness;
mod http_source;
mod leases;
mod live_feed;
mod msk_iam;
mod otlp;
mod publish_series;
mod sftp;
mod sftp_drop;
mod smoke_pipeline;
mod stack_script;
mod test_mode;
