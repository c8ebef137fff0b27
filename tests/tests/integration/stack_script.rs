//! `deploy/local/stack` is idempotent and reports truthfully.
//!
//! This test starts a *second* stack on its own ports, state directory and
//! SFTP root, so it never disturbs the stack the other tests use. It reuses
//! the main stack's Python venv, Kafka jars and Jaeger binary to avoid a second
//! install.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use votewire_tests::free_port;
use votewire_tests::kafka_cluster::free_port_run;

use votewire_tests::{Stack, unique, workspace_root};

struct SecondStack {
    env: Vec<(String, String)>,
    state_dir: tempfile::TempDir,
    sftp_root: PathBuf,
}

impl SecondStack {
    fn new(main: &Stack) -> SecondStack {
        let state_dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..9).map(|_| free_port()).collect();
        // Three Kafka nodes: client ports kafka_base.., controllers kafka_base+3..
        let kafka_base = free_port_run(6);
        let sftp_root = PathBuf::from(format!("/srv/{}", unique("votewire-sftp-stacktest")));
        let venv = Path::new(&main.var("VOTEWIRE_PYTHON"))
            .parent()
            .and_then(Path::parent)
            .expect("venv of the main stack")
            .to_path_buf();
        let env = vec![
            ("VOTEWIRE_STATE_DIR", state_dir.path().display().to_string()),
            ("VOTEWIRE_KAFKA_PORT", kafka_base.to_string()),
            (
                "VOTEWIRE_KAFKA_CONTROLLER_PORT",
                (kafka_base + 3).to_string(),
            ),
            ("VOTEWIRE_KAFKA_NODES", "3".to_string()),
            ("VOTEWIRE_DYNAMODB_PORT", ports[1].to_string()),
            ("VOTEWIRE_SFTP_PORT", ports[2].to_string()),
            ("VOTEWIRE_OTLP_GRPC_PORT", ports[3].to_string()),
            ("VOTEWIRE_OTLP_HTTP_PORT", ports[4].to_string()),
            ("VOTEWIRE_OTLP_RECEIVER_GRPC_PORT", ports[5].to_string()),
            ("VOTEWIRE_OTLP_RECEIVER_HTTP_PORT", ports[6].to_string()),
            ("VOTEWIRE_JAEGER_QUERY_PORT", ports[7].to_string()),
            ("VOTEWIRE_JAEGER_QUERY_GRPC_PORT", ports[8].to_string()),
            ("VOTEWIRE_SFTP_ROOT", sftp_root.display().to_string()),
            ("VOTEWIRE_VENV", venv.display().to_string()),
            ("VOTEWIRE_KAFKA_LIBS", main.var("VOTEWIRE_STACK_KAFKA_LIBS")),
            ("VOTEWIRE_JAEGER_BIN", main.var("VOTEWIRE_STACK_JAEGER_BIN")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        SecondStack {
            env,
            state_dir,
            sftp_root,
        }
    }

    fn run(&self, verb: &str) -> Output {
        self.run_on(verb, &[])
    }

    fn run_on(&self, verb: &str, services: &[&str]) -> Output {
        Command::new(workspace_root().join("deploy/local/stack"))
            .arg(verb)
            .args(services)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run deploy/local/stack")
    }

    fn pid(&self, service: &str) -> Option<String> {
        std::fs::read_to_string(
            self.state_dir
                .path()
                .join("run")
                .join(format!("{service}.pid")),
        )
        .ok()
    }
}

impl Drop for SecondStack {
    fn drop(&mut self) {
        let _ = self.run("down");
        let _ = std::fs::remove_dir_all(&self.sftp_root);
        let _ = std::fs::remove_dir_all(format!("{}-keys", self.sftp_root.display()));
    }
}

/// Node `i` (0-based)'s client port in `stack`'s environment.
fn ports_of(stack: &SecondStack, i: u16) -> u16 {
    let base: u16 = stack
        .env
        .iter()
        .find(|(k, _)| k == "VOTEWIRE_KAFKA_PORT")
        .and_then(|(_, v)| v.parse().ok())
        .expect("VOTEWIRE_KAFKA_PORT");
    base + i
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const SERVICES: [&str; 7] = [
    "kafka-1", "kafka-2", "kafka-3", "dynamodb", "sftp", "otlp", "jaeger",
];

#[test]
fn up_twice_is_a_no_op_and_down_then_status_reports_everything_down() {
    let main = Stack::load();
    let second = SecondStack::new(&main);

    let first = second.run("up");
    assert!(first.status.success(), "first up failed:\n{}", text(&first));
    let first_out = text(&first);
    for s in SERVICES {
        assert!(
            first_out
                .lines()
                .any(|l| l.starts_with(s) && l.contains(" up ")),
            "{s} not started:\n{first_out}"
        );
    }
    let pids: Vec<_> = SERVICES.iter().map(|s| second.pid(s)).collect();
    assert!(
        pids.iter().all(Option::is_some),
        "every service has a pid file"
    );

    let again = second.run("up");
    assert!(
        again.status.success(),
        "second up failed:\n{}",
        text(&again)
    );
    let again_out = text(&again);
    for s in SERVICES {
        assert!(
            again_out
                .lines()
                .any(|l| l.starts_with(s) && l.contains("already up")),
            "{s} was not left alone by the second up:\n{again_out}"
        );
    }
    let pids_again: Vec<_> = SERVICES.iter().map(|s| second.pid(s)).collect();
    assert_eq!(pids, pids_again, "the second up restarted something");
    // Every Kafka node's readiness line comes from a Metadata request
    // listing it; the last node up sees the whole cluster.
    assert!(
        first_out.contains("metadata lists brokers 1,2,3"),
        "{first_out}"
    );
    let env = std::fs::read_to_string(second.state_dir.path().join("stack.env")).unwrap();
    let bootstrap = format!(
        "VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}",
        ports_of(&second, 0),
        ports_of(&second, 1),
        ports_of(&second, 2)
    );
    assert!(env.contains(&bootstrap), "{env}");
    assert!(
        env.contains("VOTEWIRE_TOPICS_REPLICATION_FACTOR=3"),
        "{env}"
    );

    // One node down: status says which and fails; up brings back only it.
    let one_down = second.run_on("down", &["kafka-2"]);
    assert!(one_down.status.success(), "{}", text(&one_down));
    let status = second.run("status");
    let status_out = text(&status);
    assert!(!status.status.success(), "{status_out}");
    assert!(
        status_out
            .lines()
            .any(|l| l.starts_with("kafka-2") && l.contains(" down ")),
        "{status_out}"
    );
    assert!(
        status_out
            .lines()
            .any(|l| l.starts_with("kafka-1") && l.contains(" up ")),
        "{status_out}"
    );
    let back = second.run("up");
    assert!(back.status.success(), "{}", text(&back));
    let pids_back: Vec<_> = SERVICES.iter().map(|s| second.pid(s)).collect();
    for (i, s) in SERVICES.iter().enumerate() {
        if *s == "kafka-2" {
            assert_ne!(pids_back[i], pids[i], "kafka-2 was started again");
        } else {
            assert_eq!(pids_back[i], pids[i], "{s} was left alone");
        }
    }

    let status = second.run("status");
    assert!(
        status.status.success(),
        "status while up:\n{}",
        text(&status)
    );

    let down = second.run("down");
    assert!(down.status.success(), "down failed:\n{}", text(&down));
    let status = second.run("status");
    assert!(
        !status.status.success(),
        "status must exit non-zero when the stack is down:\n{}",
        text(&status)
    );
    let status_out = text(&status);
    for s in SERVICES {
        assert!(
            status_out
                .lines()
                .any(|l| l.starts_with(s) && l.contains(" down ")),
            "{s} not reported down:\n{status_out}"
        );
    }
}
