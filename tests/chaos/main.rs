//! The chaos suite: the GA 2021 runoff replay (`votewire demo --check`) as
//! the workload, with one fault injected mid-night per scenario. Every
//! scenario asserts what the brief asks of a real night:
//!
//! * nothing lost and nothing double-counted: the final statewide results
//!   of all 9 races (and the CSV's 465 county results) equal the
//!   independent computation from the final snapshots, which is what an
//!   undisturbed run produces (`--check` exits 1 otherwise);
//! * no result regresses to an older `source_seq` of a feed (`--check`
//!   follows the results topic and fails on any);
//! * the fault really happened and the pipeline recovered: each scenario
//!   checks its own evidence, and prints its recovery time (recorded in
//!   BENCHMARKS.md).
//!
//! The demo injects process kills and upstream faults itself (`--chaos`);
//! Kafka, DynamoDB and sshd faults are injected here, against private
//! instances (a three-node Apache Kafka cluster per scenario, a TCP proxy
//! in front of moto, a second sshd on the stack's configuration), so the
//! shared stack other tests use is never disturbed. Produce errors a real
//! broker cannot be made to return on demand come from librdkafka's mock
//! cluster (`produce_errors.rs`).
//!
//! Run: `source .votewire/stack.env; cargo nextest run -p votewire --test chaos`.

mod kafka_faults;
mod outages;
mod processes;
mod produce_errors;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long the compressed night lasts in each scenario.
pub const NIGHT_SECONDS: &str = "24";

/// What one replay ended with.
pub struct Replay {
    pub contract: serde_json::Value,
    pub stdout: String,
    pub stderr: String,
    /// The services' logs, kept by the demo (`VOTEWIRE_DEMO_LOGS`).
    pub logs: PathBuf,
    _logs_dir: tempfile::TempDir,
}

impl Replay {
    /// The recovery time the demo measured for its own fault, if any.
    pub fn recovery_ms(&self) -> Option<i64> {
        self.figure("recovery_ms=")
    }

    /// How long after the fault the CSV's first result from a file
    /// fetched after it came.
    pub fn csv_ms(&self) -> Option<i64> {
        self.figure("csv_ms=")
    }

    /// A figure the demo printed on stderr as `<name><ms>`.
    fn figure(&self, name: &str) -> Option<i64> {
        self.stderr
            .lines()
            .find_map(|l| l.split(name).nth(1))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    }

    /// Reports `recovery` for `scenario`; it must have been measured.
    pub fn report_measured(&self, scenario: &str, recovery: Option<i64>) {
        assert!(recovery.is_some(), "{}", self.stderr);
        report(scenario, recovery);
    }

    /// Every service log's text, joined.
    pub fn log_text(&self, prefix: &str) -> String {
        let mut out = String::new();
        for e in std::fs::read_dir(&self.logs).unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with(prefix) {
                out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        out
    }
}

/// Runs `votewire demo --check` with `args` and `env`; `during` is called
/// once the replay has started (its night clock running), on this thread,
/// with the demo still running. Panics, with the demo's output, unless the
/// demo exits 0 with the 9 races of the contract.
pub fn replay(args: &[&str], env: &[(&str, String)], during: impl FnOnce()) -> Replay {
    replay_night(NIGHT_SECONDS, args, env, during)
}

/// [`replay`] with a night of `seconds` (a fault that takes longer than
/// the default night needs a longer one to recover within).
pub fn replay_night(
    seconds: &str,
    args: &[&str],
    env: &[(&str, String)],
    during: impl FnOnce(),
) -> Replay {
    let logs = tempfile::tempdir().unwrap();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_votewire"))
        .current_dir(votewire_tests::workspace_root())
        .args(["demo", "--check", "--seconds", seconds])
        .args(["--live-listen", "off", "--fixtures"])
        .arg(votewire_tests::fixture("SOURCES.md").parent().unwrap())
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("VOTEWIRE_DEMO_LOGS", logs.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (stderr, started_rx) = votewire_tests::read_lines(demo.stderr.take().unwrap(), |line| {
        line.contains("h of night in").then_some(())
    });
    let (stdout, _) = votewire_tests::read_lines(demo.stdout.take().unwrap(), |_| None::<()>);
    // The fault is injected only once the night runs; a demo that ends
    // before that fails the scenario (it must never pass undisturbed).
    let started = started_rx.recv_timeout(Duration::from_secs(120)).is_ok();
    if started {
        during();
    }
    let status = demo.wait().unwrap();
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    if !(started && status.success()) {
        print_log_tails(logs.path());
    }
    assert!(
        started,
        "the replay never started its night:\n{stdout}\n{stderr}"
    );
    assert!(status.success(), "the replay failed:\n{stdout}\n{stderr}");
    let contract: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("the contract line")).unwrap();
    assert_eq!(
        contract["races"].as_array().map(Vec::len),
        Some(9),
        "{contract}"
    );
    assert!(
        stdout.contains("465 of 465 (contest, county) results equal"),
        "{stdout}"
    );
    Replay {
        contract,
        stdout,
        stderr,
        logs: logs.path().to_path_buf(),
        _logs_dir: logs,
    }
}

/// The last lines of every service log of a failed replay, on stderr (the
/// logs' folder goes with the test), so a failure in CI can be read.
fn print_log_tails(logs: &std::path::Path) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(logs)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(40)..];
        eprintln!(
            "---- last {} of {} lines of {}\n{}",
            tail.len(),
            lines.len(),
            f.display(),
            tail.join("\n")
        );
    }
}

/// The wall time from the start of the replay to fraction `f` of its
/// night (when a scenario injects its fault).
pub fn night_fraction(f: f64) -> Duration {
    Duration::from_secs_f64(NIGHT_SECONDS.parse::<f64>().unwrap() * f)
}

pub use votewire_tests::free_port;

/// Prints a scenario's recovery time where `cargo nextest --no-capture`
/// (and the CI log) shows it.
pub fn report(scenario: &str, recovery_ms: Option<i64>) {
    eprintln!(
        "chaos: {scenario}: recovery {}",
        recovery_ms.map_or_else(|| "not measured".to_string(), |ms| format!("{ms} ms"))
    );
}
