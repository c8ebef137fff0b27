//! The night's services: `votewire ingest`, `aggregate` and `api` as
//! processes on the night's fresh topics and tables, exactly as deployed,
//! each with its stderr in a log beside the feed registry; and, under
//! `--check`, the local stack brought up first when none answers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::process::Child;
use votewire_core::config::VotewireConfig;

use super::{DemoArgs, ELECTION};

/// The live page's `votewire api`, and a client for it.
pub(super) struct LiveApi {
    pub(super) child: Child,
    pub(super) client: reqwest::Client,
    pub(super) base: String,
}

/// Starts the night's services: the feed registry and the logs in one
/// temporary directory, every process on the night's topics and tables.
pub(super) struct Launcher {
    dir: tempfile::TempDir,
    exe: PathBuf,
    config: VotewireConfig,
    run_id: String,
}

impl Launcher {
    /// A launcher for the night `run_id` on `config`'s topics and tables,
    /// with the registry's feed files.
    pub(super) fn new(
        config: &VotewireConfig,
        run_id: &str,
        feed_files: &[(&str, String)],
    ) -> anyhow::Result<Launcher> {
        let dir = tempfile::tempdir()?;
        for (name, text) in feed_files {
            std::fs::write(dir.path().join(name), text)?;
        }
        Ok(Launcher {
            dir,
            exe: std::env::current_exe()?,
            config: config.clone(),
            run_id: run_id.to_string(),
        })
    }

    /// Where the feed registry and the services' logs are.
    pub(super) fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let config = &self.config;
        let mut c = tokio::process::Command::new(&self.exe);
        c.args(args)
            .env("VOTEWIRE_TOPIC_VOTES", &config.topics.votes)
            .env("VOTEWIRE_TOPIC_SNAPSHOTS", &config.topics.snapshots)
            .env("VOTEWIRE_TOPIC_RESULTS", &config.topics.results)
            .env("VOTEWIRE_TOPIC_RESULTS_TEST", &config.topics.results_test)
            .env("VOTEWIRE_TOPIC_FEED_STATUS", &config.topics.feed_status)
            .env("VOTEWIRE_TOPIC_ALERTS", &config.topics.alerts)
            .env("VOTEWIRE_TOPIC_DLQ", &config.topics.dlq)
            .env("VOTEWIRE_TABLE_PREFIX", &config.state_store.table_prefix)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        c
    }

    /// Each service's stderr goes to a log beside the feed registry; the
    /// demo prints their tails when the check fails.
    fn log(&self, name: &str) -> anyhow::Result<std::fs::File> {
        let path = self.dir().join(format!("{name}.log"));
        Ok(std::fs::File::create(&path)?)
    }

    fn feeds_dir(&self) -> String {
        self.dir().to_string_lossy().into_owned()
    }

    pub(super) fn aggregator(&self, instance: &str) -> anyhow::Result<Child> {
        let err = self.log(instance)?;
        self.command(&["aggregate", "--instance", instance, "--group", &self.run_id])
            .stderr(err)
            .spawn()
            .context("starting an aggregator")
    }

    /// An ingestor on the night's registry, its leases lasting 3 s.
    pub(super) fn ingestor(&self, instance: &str) -> anyhow::Result<Child> {
        let err = self.log(instance)?;
        let feeds_dir = self.feeds_dir();
        self.command(&[
            "ingest",
            "--instance",
            instance,
            "--lease-ttl",
            "3s",
            "--feeds",
            &feeds_dir,
        ])
        .stderr(err)
        .spawn()
        .context("starting the ingestor")
    }

    /// The live page: a real `votewire api` on the night's results topic,
    /// once it answers.
    pub(super) async fn live_api(&self, addr: std::net::SocketAddr) -> anyhow::Result<LiveApi> {
        let api_err = self.log("api")?;
        let feeds_dir = self.feeds_dir();
        let child = self
            .command(&["api", "--listen", &addr.to_string(), "--feeds", &feeds_dir])
            .env(
                "VOTEWIRE_API_TOKENS",
                format!("demo admin {}", one_off_token()?),
            )
            .stderr(api_err)
            .spawn()
            .context("starting the API")?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let base = format!("http://{addr}");
        let up = Instant::now();
        while client.get(format!("{base}/healthz")).send().await.is_err() {
            if up.elapsed() >= Duration::from_secs(20) {
                return Err(crate::exit::Unreachable(format!(
                    "the API did not answer at {base} within 20 s (is the port taken? --live-listen)"
                ))
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!("votewire demo: live results at {base}/live?election={ELECTION}");
        Ok(LiveApi {
            child,
            client,
            base,
        })
    }

    /// The services' logs, sorted by name.
    pub(super) fn logs(&self) -> anyhow::Result<Vec<PathBuf>> {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(self.dir())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        logs.sort();
        Ok(logs)
    }
}

/// The running services.
pub(super) struct Services {
    pub(super) launcher: Launcher,
    pub(super) ingestor: Child,
    pub(super) aggregators: Vec<Child>,
    pub(super) api: Option<LiveApi>,
}

impl Services {
    /// The aggregators (two under `--chaos kill-aggregator`, so the kill
    /// moves partitions to a live member and then to the one that joins),
    /// the live page's API when `--live-listen` names an address, then the
    /// ingestor.
    pub(super) async fn start(launcher: Launcher, args: &DemoArgs) -> anyhow::Result<Services> {
        let mut aggregators = vec![launcher.aggregator("demo-aggregate")?];
        if args.chaos == Some(super::Chaos::KillAggregator) {
            aggregators.push(launcher.aggregator("demo-aggregate-2")?);
        }
        let api = match live_address(&args.live_listen)? {
            Some(addr) => Some(launcher.live_api(addr).await?),
            None => None,
        };
        let ingestor = launcher.ingestor("demo-ingest")?;
        Ok(Services {
            launcher,
            ingestor,
            aggregators,
            api,
        })
    }

    /// Fails when a service stopped on its own, with the tails of every
    /// log: that ends the demo at once.
    pub(super) fn check_running(&mut self) -> anyhow::Result<()> {
        for (what, child) in std::iter::once(("the ingestor", &mut self.ingestor))
            .chain(self.aggregators.iter_mut().map(|a| ("an aggregator", a)))
        {
            if let Some(status) = child.try_wait()? {
                let logs: Vec<String> = std::fs::read_dir(self.launcher.dir())?
                    .flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                    .map(|e| {
                        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                        let tail: Vec<&str> = text.lines().rev().take(10).collect();
                        format!(
                            "--- {}:\n{}",
                            e.file_name().to_string_lossy(),
                            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                        )
                    })
                    .collect();
                anyhow::bail!(
                    "{what} stopped ({status}) during the night\n{}",
                    logs.join("\n")
                );
            }
        }
        Ok(())
    }

    /// Interrupts every service and waits for each (20 s at most, then a
    /// kill); the launcher stays, with the logs.
    pub(super) async fn stop(self) -> Launcher {
        interrupt(&self.ingestor);
        for a in &self.aggregators {
            interrupt(a);
        }
        if let Some(api) = &self.api {
            interrupt(&api.child);
        }
        for mut child in [self.ingestor]
            .into_iter()
            .chain(self.aggregators)
            .chain(self.api.map(|api| api.child))
        {
            if tokio::time::timeout(Duration::from_secs(20), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        self.launcher
    }
}

pub(super) fn interrupt(child: &tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status();
    }
}

/// `export KEY=VALUE` (or `KEY=VALUE`) lines of the stack's env file
/// (`deploy/local/stack env` names it); comments and blank lines are
/// skipped.
pub(super) fn stack_env(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.strip_prefix("export ").unwrap_or(l))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// With `--check`, the demo runs on the local stack unless the shell names
/// a stack of its own: when no `VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS` or
/// `VOTEWIRE_DYNAMODB_ENDPOINT` is set, or the broker they name does not
/// answer, bring the local stack up (`deploy/local/stack up`, which
/// installs what is missing and leaves running services alone) and run
/// the demo again in the stack's environment. `None` when the shell's
/// stack answers.
pub(super) async fn stack_up_and_rerun(
    config: &VotewireConfig,
    args: &DemoArgs,
) -> anyhow::Result<Option<ExitCode>> {
    if std::env::var_os("VOTEWIRE_DEMO_RESTARTED").is_some() {
        return Ok(None);
    }
    let named = [
        "VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS",
        "VOTEWIRE_DYNAMODB_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some());
    let script = Path::new("deploy/local/stack");
    if named {
        let mut probe = config.kafka.clone();
        probe.request_timeout_ms = 3_000;
        let reachable =
            tokio::task::spawn_blocking(move || votewire_core::kafka::broker_ids(&probe))
                .await?
                .is_ok_and(|ids| !ids.is_empty());
        if reachable {
            return Ok(None);
        }
        anyhow::ensure!(
            script.is_file(),
            "the broker at {} does not answer; start the local stack (deploy/local/stack up, from the repository root)",
            config.kafka.bootstrap_servers
        );
        eprintln!("votewire demo: the broker does not answer; bringing the local stack up");
    } else {
        anyhow::ensure!(
            script.is_file(),
            "no stack is named (VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS, VOTEWIRE_DYNAMODB_ENDPOINT) and there is no deploy/local/stack here: run from the repository root, or load a stack's variables"
        );
        eprintln!(
            "votewire demo: this shell names no stack; using the local one (deploy/local/stack up, then its env file)"
        );
    }
    // The stack's report goes to stderr: stdout ends with the JSON line.
    let up = tokio::process::Command::new(script)
        .arg("up")
        .stdout(std::io::stderr())
        .status()
        .await?;
    anyhow::ensure!(up.success(), "deploy/local/stack up failed");
    let env_file = tokio::process::Command::new(script)
        .arg("env")
        .output()
        .await?;
    let path = String::from_utf8_lossy(&env_file.stdout).trim().to_string();
    let vars = stack_env(
        &std::fs::read_to_string(&path)
            .with_context(|| format!("reading the stack's env file {path:?}"))?,
    );
    let status = tokio::process::Command::new(std::env::current_exe()?)
        .arg("demo")
        .arg("--check")
        .args(["--seconds", &args.seconds.to_string()])
        .args(
            args.speed
                .map(|s| vec!["--speed".to_string(), s.to_string()])
                .unwrap_or_default(),
        )
        .arg("--fixtures")
        .arg(&args.fixtures)
        .args(["--live-listen", &args.live_listen])
        .args(
            args.chaos
                .and_then(|c| clap::ValueEnum::to_possible_value(&c))
                .map(|v| vec!["--chaos".to_string(), v.get_name().to_string()])
                .unwrap_or_default(),
        )
        .envs(vars)
        .env("VOTEWIRE_DEMO_RESTARTED", "1")
        .status()
        .await?;
    Ok(Some(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }))
}

/// The address `--live-listen` names (a free port for port 0), or `None`
/// for `off`.
pub(super) fn live_address(listen: &str) -> anyhow::Result<Option<std::net::SocketAddr>> {
    if listen == "off" {
        return Ok(None);
    }
    let addr: std::net::SocketAddr = listen.parse().with_context(|| {
        format!("--live-listen {listen:?} is not an address like 127.0.0.1:8090")
    })?;
    if addr.port() != 0 {
        return Ok(Some(addr));
    }
    let probe = std::net::TcpListener::bind(addr)?;
    Ok(Some(probe.local_addr()?))
}

/// A one-off admin token for the demo's API: nobody uses it (the live
/// page is public), but the API does not start without one.
pub(super) fn one_off_token() -> anyhow::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}
