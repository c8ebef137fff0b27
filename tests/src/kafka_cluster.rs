//! A private Apache Kafka cluster for a test that must stop, kill or
//! reconfigure brokers without touching the shared stack's.
//!
//! It is started by the project's own script, `deploy/local/stack up kafka`,
//! with a state directory of its own, free ports, and the shared stack's
//! jars and Python venv (so nothing is resolved or installed again). The
//! cluster is stopped when the value is dropped, pass or fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Stack, workspace_root};

/// What a private cluster is started with beyond its node count.
#[derive(Debug, Default, Clone)]
pub struct ClusterOptions {
    /// Properties appended to every node's (a later line wins), with
    /// `{base_port}` and `{controller_port}` standing for node 1's ports.
    pub extra_properties: String,
    /// A SCRAM credential written when the nodes are formatted, as
    /// Kafka's `StorageTool format --add-scram` takes it.
    pub add_scram: Option<String>,
}

/// A private cluster of `nodes` combined broker+controller nodes.
pub struct KafkaCluster {
    /// How many combined broker+controller nodes it runs.
    pub nodes: usize,
    /// Node i's client port is `base_port + i - 1`.
    pub base_port: u16,
    controller_port: u16,
    dir: tempfile::TempDir,
    options: ClusterOptions,
}

impl KafkaCluster {
    /// Starts `nodes` nodes and waits until each lists itself in a
    /// Metadata request (the stack's readiness check).
    pub fn start(nodes: usize) -> KafkaCluster {
        KafkaCluster::start_with(nodes, ClusterOptions::default())
    }

    /// [`KafkaCluster::start`] with `options` (the nodes' settings).
    pub fn start_with(nodes: usize, options: ClusterOptions) -> KafkaCluster {
        let dir = tempfile::tempdir().expect("a temporary directory");
        // One run for both listeners, so the two can never overlap.
        let base_port = free_port_run(2 * nodes);
        let controller_port = base_port + u16::try_from(nodes).expect("a small node count");
        let cluster = KafkaCluster {
            nodes,
            base_port,
            controller_port,
            dir,
            options,
        };
        cluster.stack(&["up", "kafka"]);
        cluster
    }

    /// `127.0.0.1:PORT,…` for every node.
    pub fn bootstrap(&self) -> String {
        (1..=self.nodes)
            .map(|i| format!("127.0.0.1:{}", self.port(i)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `i`'s client port.
    pub fn port(&self, i: usize) -> u16 {
        self.base_port + u16::try_from(i - 1).expect("a small node number")
    }

    /// The replication factor its topics take: 3, or fewer nodes.
    pub fn replication_factor(&self) -> i32 {
        i32::try_from(self.nodes.min(3)).expect("a small node count")
    }

    /// Runs `deploy/local/stack ARGS` against this cluster; panics with its
    /// output (and the nodes' logs' tails) unless it succeeds.
    pub fn stack(&self, args: &[&str]) -> String {
        let shared = Stack::load();
        let extra = self.dir.path().join("extra.properties");
        let mut cmd = self.stack_command(args);
        cmd.env(
            "VOTEWIRE_KAFKA_LIBS",
            shared.var("VOTEWIRE_STACK_KAFKA_LIBS"),
        )
        .env("VOTEWIRE_VENV", venv_of(&shared))
        .env_remove("VOTEWIRE_KAFKA_EXTRA_PROPERTIES")
        .env_remove("VOTEWIRE_KAFKA_ADD_SCRAM");
        if !self.options.extra_properties.is_empty() {
            let text = self
                .options
                .extra_properties
                .replace("{base_port}", &self.base_port.to_string())
                .replace("{controller_port}", &self.controller_port.to_string());
            std::fs::write(&extra, text).unwrap();
            cmd.env("VOTEWIRE_KAFKA_EXTRA_PROPERTIES", &extra);
        }
        if let Some(scram) = &self.options.add_scram {
            cmd.env("VOTEWIRE_KAFKA_ADD_SCRAM", scram);
        }
        let out = cmd.output().expect("running deploy/local/stack");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "deploy/local/stack {} failed:\n{text}\n{}",
            args.join(" "),
            self.log_tails()
        );
        text
    }

    /// The pid of node `i`'s JVM, from the stack's pid file.
    pub fn pid(&self, i: usize) -> u32 {
        let file = self.dir.path().join(format!("run/kafka-{i}.pid"));
        std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .trim()
            .parse()
            .expect("a pid")
    }

    /// SIGKILL to node `i`: no controlled shutdown, no flush.
    pub fn kill_9(&self, i: usize) {
        let status = Command::new("kill")
            .args(["-9", &self.pid(i).to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -9 of kafka-{i}");
        let until = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{}", self.pid(i))).exists() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The state directory (logs under `logs/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines of every node's log.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for i in 1..=self.nodes {
            let log = self.dir.path().join(format!("logs/kafka-{i}.log"));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- {} (last 15 lines)\n", log.display()));
            for l in &lines[lines.len().saturating_sub(15)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl KafkaCluster {
    /// `deploy/local/stack ARGS` aimed at this cluster's state directory,
    /// node count and ports.
    fn stack_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(workspace_root().join("deploy/local/stack"));
        cmd.args(args)
            .env("VOTEWIRE_STATE_DIR", self.dir.path())
            .env("VOTEWIRE_KAFKA_NODES", self.nodes.to_string())
            .env("VOTEWIRE_KAFKA_PORT", self.base_port.to_string())
            .env(
                "VOTEWIRE_KAFKA_CONTROLLER_PORT",
                self.controller_port.to_string(),
            );
        cmd
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        let _ = self.stack_command(&["down", "kafka"]).output();
    }
}

/// The shared stack's venv (the interpreter's folder's parent).
fn venv_of(stack: &Stack) -> PathBuf {
    let python = PathBuf::from(stack.var("VOTEWIRE_PYTHON"));
    python
        .parent()
        .and_then(Path::parent)
        .expect("VOTEWIRE_PYTHON is <venv>/bin/python")
        .to_path_buf()
}

/// The first of `n` consecutive ports that are free now, from a range
/// (20000–29999) away from the stack's defaults and the kernel's ephemeral
/// ports, picked by the process id and time so parallel tests differ.
pub fn free_port_run(n: usize) -> u16 {
    let n = u16::try_from(n).expect("a small count");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let seed = u64::from(std::process::id()) * 7919 + nanos % 10_007;
    for attempt in 0..2_000u64 {
        let first = 20_000 + u16::try_from((seed + attempt * 37) % 9_990).unwrap();
        let free =
            (first..first + n).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            return first;
        }
    }
    panic!("no run of {n} free ports in 20000-29999");
}
