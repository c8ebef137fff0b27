//! The SFTP drop watcher against the real sshd: partial files are never
//! read, renames are picked up once, re-uploads are read again unless
//! identical, a restart remembers, markers and ordering hold, and processed
//! files can be archived. "Now" is passed in, so tests do not sleep.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use votewire_ingestors::sources::sftp::drop::{DropConfig, DropWatcher, FileIdentity, ReadyFile};
use votewire_ingestors::sources::sftp::{SftpEndpoint, SftpSession};
use votewire_tests::Stack;

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

fn set_mtime(path: &Path, unix: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(unix))
        .unwrap();
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn config(dir: &str) -> DropConfig {
    DropConfig {
        dir: dir.to_string(),
        pattern: "*.csv".into(),
        min_age_secs: 5,
        done_marker: None,
        archive_dir: None,
        max_bytes: 1 << 20,
    }
}

/// Runs `f` with a connected session in a blocking thread.
async fn with_session<T: Send + 'static>(
    stack: &Stack,
    f: impl FnOnce(&SftpSession) -> T + Send + 'static,
) -> T {
    let ep = endpoint(stack);
    tokio::task::spawn_blocking(move || f(&SftpSession::connect(&ep).expect("sftp login")))
        .await
        .unwrap()
}

/// Two polls (the first sees the files, the second finds them stable) and
/// every file read marked processed: what one ingest pass over a settled
/// folder does.
fn read_all_stable(w: &mut DropWatcher, s: &SftpSession) -> Vec<ReadyFile> {
    w.poll(s, now()).unwrap();
    let ready = w.poll(s, now()).unwrap();
    for r in &ready {
        w.mark_processed(s, r.identity.clone()).unwrap();
    }
    ready
}

fn names(ready: &[ReadyFile]) -> Vec<String> {
    ready
        .iter()
        .map(|r| r.identity.path.rsplit('/').next().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_file_still_being_written_is_not_read_until_stable_and_old_enough() {
    let stack = Stack::load();
    let (remote, local) = stack.sftp().fresh_dir("drop-slow");
    let file = local.join("runoff.csv");
    let t = now();
    std::fs::write(&file, b"county,precinct\n").unwrap();
    set_mtime(&file, t);
    let cfg = config(&remote);
    let (first, second, third, fourth) = with_session(&stack, move |s| {
        let mut w = DropWatcher::new(cfg, []);
        let first = w.poll(s, t + 10).unwrap(); // first sight
        // Still being appended to.
        std::fs::write(&file, b"county,precinct\nFulton,01A\n").unwrap();
        set_mtime(&file, t + 8);
        let second = w.poll(s, t + 10).unwrap(); // size changed since the last listing
        let third = w.poll(s, t + 10).unwrap(); // stable, but only 2 s old
        let fourth = w.poll(s, t + 13).unwrap(); // stable and 5 s old
        (first, second, third, fourth)
    })
    .await;
    assert!(first.is_empty() && second.is_empty() && third.is_empty());
    assert_eq!(names(&fourth), ["runoff.csv"]);
    assert_eq!(fourth[0].bytes, b"county,precinct\nFulton,01A\n");
}

#[tokio::test]
async fn a_part_file_renamed_into_place_is_picked_up_once_and_a_restart_remembers() {
    let stack = Stack::load();
    let (remote, local) = stack.sftp().fresh_dir("drop-rename");
    let t = now() - 60;
    std::fs::write(local.join("x.csv.part"), b"a,b\n1,2\n").unwrap();
    set_mtime(&local.join("x.csv.part"), t);
    let cfg = config(&remote);
    let local2 = local.clone();
    let (before, after, again, processed) = with_session(&stack, move |s| {
        let mut w = DropWatcher::new(cfg, []);
        let mut before = w.poll(s, t + 60).unwrap();
        before.extend(w.poll(s, t + 60).unwrap());
        std::fs::rename(local2.join("x.csv.part"), local2.join("x.csv")).unwrap();
        let mut after = w.poll(s, t + 60).unwrap();
        after.extend(w.poll(s, t + 60).unwrap());
        for r in &after {
            w.mark_processed(s, r.identity.clone()).unwrap();
        }
        let mut again = w.poll(s, t + 60).unwrap();
        again.extend(w.poll(s, t + 60).unwrap());
        (before, after, again, w.processed())
    })
    .await;
    assert!(before.is_empty(), ".part files are never read");
    assert_eq!(names(&after), ["x.csv"]);
    assert!(again.is_empty(), "picked up once");
    // A restarted watcher, given the processed set from the cursor.
    let cfg = config(&remote);
    let restarted = with_session(&stack, move |s| {
        let mut w = DropWatcher::new(cfg, processed);
        let mut r = w.poll(s, t + 60).unwrap();
        r.extend(w.poll(s, t + 60).unwrap());
        r
    })
    .await;
    assert!(
        restarted.is_empty(),
        "a restart does not re-read processed files"
    );
}

#[tokio::test]
async fn a_changed_re_upload_is_read_again_and_an_identical_one_is_not() {
    let stack = Stack::load();
    let (remote, local) = stack.sftp().fresh_dir("drop-reupload");
    let file = local.join("ga.csv");
    let t = now() - 120;
    std::fs::write(&file, b"v1\n").unwrap();
    set_mtime(&file, t);
    let cfg = config(&remote);
    let (first, changed, identical, processed) = with_session(&stack, move |s| {
        let mut w = DropWatcher::new(cfg, []);
        let poll2 = |w: &mut DropWatcher| {
            let mut r = w.poll(s, t + 120).unwrap();
            r.extend(w.poll(s, t + 120).unwrap());
            r
        };
        let first = poll2(&mut w);
        for r in &first {
            w.mark_processed(s, r.identity.clone()).unwrap();
        }
        std::fs::write(&file, b"v2, longer\n").unwrap();
        set_mtime(&file, t + 10);
        let changed = poll2(&mut w);
        for r in &changed {
            w.mark_processed(s, r.identity.clone()).unwrap();
        }
        std::fs::write(&file, b"v2, longer\n").unwrap();
        set_mtime(&file, t + 20);
        let identical = poll2(&mut w);
        (first, changed, identical, w.processed())
    })
    .await;
    assert_eq!(names(&first), ["ga.csv"]);
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].bytes, b"v2, longer\n");
    assert_ne!(changed[0].identity.sha256, first[0].identity.sha256);
    assert!(
        identical.is_empty(),
        "identical bytes are not processed again"
    );
    let id: &FileIdentity = &processed[0];
    assert_eq!(id.mtime, t + 20, "the identical re-upload is recorded");
}

#[tokio::test]
async fn done_markers_ordering_and_archiving() {
    let stack = Stack::load();
    let target = stack.sftp();
    let (remote, local) = target.fresh_dir("drop-marker");
    std::fs::create_dir_all(local.join("archive")).unwrap();
    let status = std::process::Command::new("chown")
        .args(["-R", &target.user])
        .arg(&local)
        .status()
        .unwrap();
    assert!(status.success(), "the sftp user owns its drop directory");
    let t = now() - 300;
    for (name, mtime) in [("b.csv", t + 2), ("a.csv", t + 1), ("c.csv", t + 1)] {
        std::fs::write(local.join(name), name.as_bytes()).unwrap();
        set_mtime(&local.join(name), mtime);
    }
    let mut cfg = config(&remote);
    cfg.done_marker = Some(".done".into());
    cfg.archive_dir = Some(format!("{remote}/archive"));
    let local2 = local.clone();
    let (unmarked, marked) = with_session(&stack, move |s| {
        let mut w = DropWatcher::new(cfg, []);
        let mut unmarked = w.poll(s, t + 300).unwrap();
        unmarked.extend(w.poll(s, t + 300).unwrap());
        for n in ["a.csv", "b.csv", "c.csv"] {
            std::fs::write(local2.join(format!("{n}.done")), b"").unwrap();
        }
        // The files were already stable before the markers appeared, so one
        // listing is enough. (A ready file is returned until it is marked
        // processed: the caller marks after the Kafka ack.)
        let marked = w.poll(s, t + 300).unwrap();
        for r in &marked {
            w.mark_processed(s, r.identity.clone()).unwrap();
        }
        (unmarked, marked)
    })
    .await;
    assert!(unmarked.is_empty(), "no marker, not ready");
    assert_eq!(
        names(&marked),
        ["a.csv", "c.csv", "b.csv"],
        "(mtime, name) order"
    );
    for n in ["a.csv", "b.csv", "c.csv"] {
        assert!(local.join("archive").join(n).is_file(), "{n} archived");
        assert!(!local.join(n).exists());
    }
}

/// A symlink in the drop folder (to a file the account can read, such as
/// its own key) and a FIFO (which would block a reader forever) are never
/// read; the regular file beside them is.
#[tokio::test]
async fn symlinks_and_fifos_in_the_drop_folder_are_never_read() {
    let stack = Stack::load();
    let target = stack.sftp();
    let (remote, local) = target.fresh_dir("drop-links");
    let t = now() - 300;
    std::fs::write(local.join("real.csv"), b"county,votes\nA,35\n").unwrap();
    set_mtime(&local.join("real.csv"), t);
    std::os::unix::fs::symlink(&target.key, local.join("key.csv")).unwrap();
    let fifo = local.join("pipe.csv");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo");
    let cfg = config(&remote);
    // "Now" is well past every entry's mtime, so the age rule passes the
    // link and the FIFO too: only the file-type rule keeps them out.
    let later = now() + 300;
    let ready = tokio::time::timeout(
        Duration::from_secs(30),
        with_session(&stack, move |s| {
            let mut w = DropWatcher::new(cfg, []);
            let mut ready = w.poll(s, later).unwrap();
            ready.extend(w.poll(s, later).unwrap());
            ready
        }),
    )
    .await
    .expect("a FIFO in the folder must not block the poll");
    assert_eq!(names(&ready), ["real.csv"]);
}

/// A processed file whose move to the archive directory fails (here the
/// directory does not exist) stays in the folder and is not published
/// again, in this run or after a restart from the cursor's set.
#[tokio::test]
async fn a_file_whose_archive_move_fails_is_not_published_again() {
    let stack = Stack::load();
    let (remote, local) = stack.sftp().fresh_dir("drop-move-fails");
    let t = now() - 300;
    std::fs::write(local.join("a.csv"), b"county,votes\nA,35\n").unwrap();
    set_mtime(&local.join("a.csv"), t);
    let mut cfg = config(&remote);
    cfg.archive_dir = Some(format!("{remote}/no-such-archive"));
    let (first, moved, again, after_restart) = with_session(&stack, move |s| {
        let mut w = DropWatcher::new(cfg.clone(), []);
        w.poll(s, t + 300).unwrap();
        let first = w.poll(s, t + 300).unwrap();
        let moved = w.mark_processed(s, first[0].identity.clone());
        w.poll(s, t + 300).unwrap();
        let again = w.poll(s, t + 300).unwrap();
        let mut restarted = DropWatcher::resume(cfg, w.processed_files());
        restarted.poll(s, t + 300).unwrap();
        let after_restart = restarted.poll(s, t + 300).unwrap();
        (first, moved, again, after_restart)
    })
    .await;
    assert_eq!(names(&first), ["a.csv"]);
    assert!(moved.is_err(), "the move failed");
    assert!(local.join("a.csv").is_file(), "the file is still there");
    assert!(again.is_empty(), "republished after a failed move");
    assert!(after_restart.is_empty(), "republished after a restart");
}

/// More files than the cursor remembers by name: after a restart from the
/// bounded set, the older files still in the folder are below its floor
/// and not published again, and a new file is.
#[tokio::test]
async fn past_the_remembered_names_a_restart_republishes_nothing_old() {
    use votewire_ingestors::sources::sftp::drop::MAX_REMEMBERED;
    let stack = Stack::load();
    let (remote, local) = stack.sftp().fresh_dir("drop-floor");
    let t = now() - 100_000;
    let n = MAX_REMEMBERED + 50;
    for i in 0..n {
        let p = local.join(format!("{i:05}.csv"));
        std::fs::write(&p, format!("county,votes\nA,{i}\n")).unwrap();
        set_mtime(&p, t + i as u64);
    }
    let cfg = config(&remote);
    let local2 = local.clone();
    let (first, after_restart) = with_session(&stack, move |s| {
        let mut w = DropWatcher::new(cfg.clone(), []);
        let first = read_all_stable(&mut w, s);
        let kept = w.processed_files();
        assert!(kept.files.len() <= MAX_REMEMBERED);
        assert!(
            kept.floor_mtime > t,
            "the floor rose past the forgotten names"
        );
        let newer = local2.join("new.csv");
        std::fs::write(&newer, b"county,votes\nB,1\n").unwrap();
        set_mtime(&newer, now() - 60);
        let mut restarted = DropWatcher::resume(cfg, kept);
        restarted.poll(s, now()).unwrap();
        (first.len(), restarted.poll(s, now()).unwrap())
    })
    .await;
    assert_eq!(first, n);
    assert_eq!(names(&after_restart), ["new.csv"]);
}

/// A file that waits for its marker while more than the remembered number
/// of newer files are processed is not hidden behind the floor: once its
/// marker lands, it is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_waiting_for_its_marker_is_never_hidden_behind_the_floor() {
    use votewire_ingestors::sources::sftp::drop::MAX_REMEMBERED;
    let stack = Stack::load();
    let (remote, local) = stack.sftp().fresh_dir("drop-floor-marker");
    let t = now() - 100_000;
    // The oldest file, without its marker yet.
    let waiting = local.join("00000-waiting.csv");
    std::fs::write(&waiting, b"county,votes\nW,1\n").unwrap();
    set_mtime(&waiting, t);
    let n = MAX_REMEMBERED + 50;
    for i in 1..=n {
        let p = local.join(format!("{i:05}.csv"));
        std::fs::write(&p, format!("county,votes\nA,{i}\n")).unwrap();
        set_mtime(&p, t + i as u64);
        std::fs::write(local.join(format!("{i:05}.csv.done")), b"").unwrap();
    }
    let cfg = DropConfig {
        done_marker: Some(".done".into()),
        ..config(&remote)
    };
    let local2 = local.clone();
    let (first, kept, after) = with_session(&stack, move |s| {
        let mut w = DropWatcher::new(cfg.clone(), []);
        let first = read_all_stable(&mut w, s);
        let kept = w.processed_files();
        // Its marker lands; a restarted watcher (the cursor's state) and
        // this one both read it.
        std::fs::write(local2.join("00000-waiting.csv.done"), b"").unwrap();
        let mut restarted = DropWatcher::resume(cfg, kept.clone());
        restarted.poll(s, now()).unwrap();
        let after = restarted.poll(s, now()).unwrap();
        (first.len(), kept, after)
    })
    .await;
    assert_eq!(first, n, "every file with a marker was ready");
    assert!(
        kept.floor_mtime <= t,
        "the floor ({}) passed the waiting file's mtime ({t})",
        kept.floor_mtime
    );
    assert_eq!(names(&after), ["00000-waiting.csv"]);
}
