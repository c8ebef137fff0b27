//! Scenarios 4 and 5: DynamoDB and sshd out for 10 s in the middle of the
//! night, each a private instance or proxy this test controls, so the
//! shared stack other tests use is never touched. (Kafka's faults are in
//! `kafka_faults.rs`.)

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Replay, free_port, night_fraction, replay};
use votewire_tests::proxy::PausableProxy;
use votewire_tests::wait_for_port;

const OUTAGE: Duration = Duration::from_secs(10);

/// SIGTERM to `child` and its direct children (an sshd's sessions), then
/// waits for it (SIGKILL after 20 s). Only these pids are signalled.
fn stop(child: &mut Child) {
    let pid = child.id().to_string();
    let _ = Command::new("pkill").args(["-TERM", "-P", &pid]).status();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let until = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Replays the night with `env`; at 40% of it runs `down`, waits
/// [`OUTAGE`], runs `up`, and tells the demo when the outage ended (the
/// wall time in ms, in the file `--fault-cleared-file` names) so that it
/// measures the recovery from there.
fn replay_through_outage(env: &[(&str, String)], down: impl FnOnce(), up: impl FnOnce()) -> Replay {
    let dir = tempfile::tempdir().unwrap();
    let cleared = dir.path().join("cleared");
    replay(
        &["--fault-cleared-file", cleared.to_str().unwrap()],
        env,
        || {
            std::thread::sleep(night_fraction(0.4));
            down();
            std::thread::sleep(OUTAGE);
            up();
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis();
            std::fs::write(&cleared, ms.to_string()).unwrap();
        },
    )
}

/// 4. DynamoDB unreachable for 10 s (moto keeps its state in memory only,
///    so a proxy in front of it is paused rather than moto stopped). The
///    ingestor cannot renew leases or commit cursors meanwhile; it must not
///    lose or repeat anything, and it recovers on its own.
#[test]
fn dynamodb_unreachable_for_ten_seconds_loses_and_doubles_nothing() {
    let stack = votewire_tests::Stack::load();
    let (proxy, through) = PausableProxy::in_front_of(&stack.var("VOTEWIRE_DYNAMODB_ENDPOINT"));
    let run = replay_through_outage(
        &[("VOTEWIRE_DYNAMODB_ENDPOINT", through)],
        || proxy.pause(),
        || proxy.resume(),
    );
    let ingest = run.log_text("demo-ingest");
    assert!(
        ingest.to_lowercase().contains("state store") || ingest.contains("dynamodb"),
        "the ingestor reported the unreachable state store:\n{ingest}"
    );
    run.report_measured("DynamoDB unreachable 10 s", run.recovery_ms());
}

/// 5. sshd stopped for 10 s: a second sshd on the stack's configuration and
///    host key, on a port of its own, stopped with its sessions at 40% of
///    the night (the first CSV drop lands during the outage).
#[test]
fn sshd_stopped_for_ten_seconds_loses_and_doubles_nothing() {
    let stack = votewire_tests::Stack::load();
    let sftp_dir = PathBuf::from(stack.var("VOTEWIRE_STATE_DIR")).join("sftp");
    let config = sftp_dir.join("sshd_config");
    assert!(
        config.is_file(),
        "{} (deploy/local/stack up)",
        config.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let host_key = std::fs::read_to_string(sftp_dir.join("ssh_host_ed25519_key.pub")).unwrap();
    let known_hosts = dir.path().join("known_hosts");
    let key_fields: Vec<&str> = host_key.split_whitespace().take(2).collect();
    std::fs::write(
        &known_hosts,
        format!("[127.0.0.1]:{port} {}\n", key_fields.join(" ")),
    )
    .unwrap();
    let pid_file = dir.path().join("sshd.pid");
    let start = || -> Child {
        Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .arg("-o")
            .arg(format!("Port={port}"))
            .arg("-o")
            .arg(format!("PidFile={}", pid_file.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let sshd = std::cell::RefCell::new(start());
    wait_for_port(port, "sshd");
    let run = replay_through_outage(
        &[
            ("VOTEWIRE_SFTP_PORT", port.to_string()),
            (
                "VOTEWIRE_SFTP_KNOWN_HOSTS",
                known_hosts.display().to_string(),
            ),
        ],
        // With its sessions (its children), so the ingestor's open SFTP
        // session breaks too.
        || stop(&mut sshd.borrow_mut()),
        || {
            *sshd.borrow_mut() = start();
            wait_for_port(port, "sshd, restarted");
        },
    );
    stop(&mut sshd.borrow_mut());
    let ingest = run.log_text("demo-ingest");
    assert!(
        ingest.contains("sftp") || ingest.contains("SFTP") || ingest.contains("ssh"),
        "the ingestor reported the SFTP outage:\n{ingest}"
    );
    // Only the CSV comes over SFTP: its results after the outage are the
    // recovery.
    run.report_measured("sshd stopped 10 s (CSV results after it)", run.csv_ms());
}
