//! The local sshd serves SFTP with key login, and votewire's SFTP client
//! verifies host keys: listing, reading, size and mtime work; a known_hosts
//! entry with a different key is refused before any credential is sent.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use votewire_ingestors::sources::sftp::{SftpEndpoint, SftpError, SftpSession};
use votewire_tests::{Stack, fixture_bytes};

const CSV: &str = "precinct_csv/openelections-data-ga/20210105__ga__runoff.csv";

fn endpoint(stack: &Stack) -> SftpEndpoint {
    let t = stack.sftp();
    SftpEndpoint {
        host: t.host,
        port: t.port,
        user: t.user,
        private_key: t.key,
        known_hosts: t.known_hosts,
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn a_dropped_file_is_listed_and_read_with_its_size_and_mtime() {
    let stack = Stack::load();
    let (remote_dir, local_dir) = stack.sftp().fresh_dir("sftp-read");
    let bytes = fixture_bytes(CSV);
    std::fs::write(local_dir.join("runoff.csv"), &bytes).unwrap();
    std::fs::write(local_dir.join("second.csv"), b"county,precinct\n").unwrap();
    let local_mtime = std::fs::metadata(local_dir.join("runoff.csv"))
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();

    let ep = endpoint(&stack);
    let dir = remote_dir.clone();
    let (listing, read_back, stat) = tokio::task::spawn_blocking(move || {
        let session = SftpSession::connect(&ep).expect("login with the stack's client key");
        let mut listing = session.list(&dir).expect("readdir");
        listing.sort_by(|a, b| a.path.cmp(&b.path));
        let read_back = session
            .read(&format!("{dir}/runoff.csv"), 64 * 1024 * 1024)
            .expect("read");
        let stat = session.stat(&format!("{dir}/runoff.csv")).expect("stat");
        (listing, read_back, stat)
    })
    .await
    .unwrap();

    let names: Vec<&str> = listing.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        names,
        [
            format!("{remote_dir}/runoff.csv"),
            format!("{remote_dir}/second.csv")
        ]
    );
    assert_eq!(read_back, bytes);
    assert_eq!(stat.size, bytes.len() as u64);
    assert_eq!(listing[0].size, bytes.len() as u64);
    assert_eq!(stat.mtime, local_mtime);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(stat.mtime) < 120, "mtime is recent");
}

#[tokio::test]
async fn a_read_over_the_size_limit_is_refused() {
    let stack = Stack::load();
    let (remote_dir, local_dir) = stack.sftp().fresh_dir("sftp-cap");
    std::fs::write(local_dir.join("big.csv"), vec![b'9'; 5000]).unwrap();
    let ep = endpoint(&stack);
    let err = tokio::task::spawn_blocking(move || {
        SftpSession::connect(&ep)
            .unwrap()
            .read(&format!("{remote_dir}/big.csv"), 4096)
    })
    .await
    .unwrap()
    .expect_err("over the cap");
    assert!(
        matches!(
            err,
            SftpError::TooLarge {
                max_bytes: 4096,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_server_whose_host_key_differs_from_known_hosts_is_refused() {
    let stack = Stack::load();
    let mut ep = endpoint(&stack);
    let dir = tempfile::tempdir().unwrap();
    let other_key = dir.path().join("other");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other_key)
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success());
    let pubkey = std::fs::read_to_string(other_key.with_extension("pub")).unwrap();
    let key_fields: Vec<&str> = pubkey.split_whitespace().take(2).collect();
    let wrong = dir.path().join("known_hosts");
    std::fs::write(
        &wrong,
        format!("[{}]:{} {}\n", ep.host, ep.port, key_fields.join(" ")),
    )
    .unwrap();
    ep.known_hosts = wrong;
    let changed = tokio::task::spawn_blocking({
        let ep = ep.clone();
        move || SftpSession::connect(&ep).map(|_| ())
    })
    .await
    .unwrap()
    .expect_err("a mismatched host key must be refused");
    assert!(
        matches!(changed, SftpError::ChangedHostKey { .. }),
        "{changed}"
    );
    assert!(!changed.is_retryable());

    let empty = dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    ep.known_hosts = empty;
    let unknown = tokio::task::spawn_blocking(move || SftpSession::connect(&ep).map(|_| ()))
        .await
        .unwrap()
        .expect_err("an unknown host key must be refused");
    assert!(
        matches!(unknown, SftpError::UnknownHostKey { .. }),
        "{unknown}"
    );
}
