//! Signing in to a Kafka cluster the way production does: SASL/SCRAM over
//! TLS, against a real broker that requires authentication.
//!
//! The broker is a private tansu with `--authentication` (SCRAM-SHA-512
//! users in its sqlite storage). tansu 0.6.0 cannot serve TLS itself (its
//! `--cert` and `--key` flags exclude each other), so a real TLS terminator,
//! socat with OpenSSL, stands in front of it, as a load balancer would, and
//! tansu advertises socat's address. The votewire binary then runs
//! `topics ensure` and `smoke` (produce, consume in a group, commit) with
//! only `VOTEWIRE_KAFKA_…` variables, as the Terraform's SCRAM mode sets
//! them.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use votewire_tests::{fixture, free_port, tansu_binary, wait_for_port};

/// A child process killed when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_tansu(dir: &Path, port: u16, advertised: u16, authentication: bool) -> Running {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("tansu.log"))
        .unwrap();
    let mut cmd = Command::new(tansu_binary());
    cmd.current_dir(dir)
        .args(["broker", "--listener-url"])
        .arg(format!("tcp://127.0.0.1:{port}"))
        .arg("--advertised-listener-url")
        .arg(format!("tcp://127.0.0.1:{advertised}"))
        .args(["--storage-engine", "sqlite://tansu.db"])
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    if authentication {
        cmd.arg("--authentication");
    }
    let child = Running(cmd.spawn().unwrap());
    wait_for_port(port, "tansu");
    child
}

/// The SASL_SSL broker: its address, the CA file that verifies it, and
/// the SCRAM user's password.
struct SecureBroker {
    bootstrap: String,
    ca: std::path::PathBuf,
    password: String,
    _dir: tempfile::TempDir,
    _broker: Running,
    _tls: Running,
}

fn secure_broker() -> SecureBroker {
    let dir = tempfile::tempdir().unwrap();
    let (ca, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let openssl = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&ca)
        .output()
        .expect("openssl (Debian's openssl package)");
    assert!(
        openssl.status.success(),
        "{}",
        String::from_utf8_lossy(&openssl.stderr)
    );
    let (port, tls_port) = (free_port(), free_port());
    let password = votewire_tests::unique("pw");

    // The user goes into the broker's storage while it still lets anyone in.
    {
        let _open = start_tansu(dir.path(), port, port, false);
        let out = Command::new(tansu_binary())
            .args(["user", "create", "--broker"])
            .arg(format!("tcp://127.0.0.1:{port}"))
            .args(["votewire-ingestor", &password])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tansu user create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let broker = start_tansu(dir.path(), port, tls_port, true);
    let tls = Running(
        Command::new("socat")
            .arg(format!(
                "OPENSSL-LISTEN:{tls_port},bind=127.0.0.1,reuseaddr,fork,verify=0,cert={},key={}",
                ca.display(),
                key.display()
            ))
            .arg(format!("TCP:127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat (deploy/local/stack installs it)"),
    );
    wait_for_port(tls_port, "socat");
    SecureBroker {
        bootstrap: format!("127.0.0.1:{tls_port}"),
        ca,
        password,
        _dir: dir,
        _broker: broker,
        _tls: tls,
    }
}

fn votewire_on(broker: &SecureBroker, password: &str, ca: Option<&Path>, args: &[&str]) -> Output {
    let state = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_votewire"));
    cmd.args(args)
        .env("VOTEWIRE_STATE_DIR", state.path())
        .env("VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS", &broker.bootstrap)
        .env("VOTEWIRE_KAFKA_PROPERTY_SECURITY_PROTOCOL", "SASL_SSL")
        .env("VOTEWIRE_KAFKA_PROPERTY_SASL_MECHANISMS", "SCRAM-SHA-512")
        .env("VOTEWIRE_KAFKA_PROPERTY_SASL_USERNAME", "votewire-ingestor")
        .env("VOTEWIRE_KAFKA_PROPERTY_SASL_PASSWORD", password)
        .env("VOTEWIRE_KAFKA_PROPERTY_SOCKET_TIMEOUT_MS", "5000")
        .env_remove("VOTEWIRE_CONFIG");
    if let Some(ca) = ca {
        cmd.env("VOTEWIRE_KAFKA_PROPERTY_SSL_CA_LOCATION", ca);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn scram_over_tls_creates_topics_and_carries_a_payload_through_a_group() {
    let broker = secure_broker();
    let ca = Some(broker.ca.as_path());

    let ensure = votewire_on(&broker, &broker.password, ca, &["topics", "ensure"]);
    let out = text(&ensure);
    assert!(ensure.status.success(), "{out}");
    assert_eq!(out.matches("created ").count(), 5, "{out}");

    let path = fixture(
        "clarity_enr/GA_107556_runoff_2021_ALLjson_series/135_20210116T000509Z_v275235/ALL.json",
    );
    let smoke = votewire_on(
        &broker,
        &broker.password,
        ca,
        &["smoke", "--fixture", path.to_str().unwrap()],
    );
    let out = text(&smoke);
    assert!(smoke.status.success(), "{out}");
    assert!(out.contains("smoke pipeline OK"), "{out}");
    assert!(
        !out.contains(&broker.password),
        "the password never reaches the output"
    );
}

#[test]
fn a_wrong_password_or_an_unverified_certificate_is_refused() {
    let broker = secure_broker();
    let wrong = votewire_on(
        &broker,
        "not-the-password",
        Some(broker.ca.as_path()),
        &["topics", "ensure"],
    );
    assert!(!wrong.status.success(), "{}", text(&wrong));
    assert!(!text(&wrong).contains("not-the-password"));
    // Without the CA, librdkafka verifies the broker's certificate against
    // the system's and refuses the self-signed one.
    let unverified = votewire_on(&broker, &broker.password, None, &["topics", "ensure"]);
    assert!(!unverified.status.success(), "{}", text(&unverified));
    // The right password and CA still work on the same broker.
    let right = votewire_on(
        &broker,
        &broker.password,
        Some(broker.ca.as_path()),
        &["topics", "ensure"],
    );
    assert!(right.status.success(), "{}", text(&right));
}
