//! Signing in to a Kafka cluster the way production does: SASL/SCRAM over
//! TLS, against a real Apache Kafka that requires authentication.
//!
//! The broker is a private one-node Kafka started by `deploy/local/stack`
//! with a second listener, `SASL_SSL` with SCRAM-SHA-512, whose certificate
//! is a self-signed one made here; the SCRAM user is written when the node
//! is formatted (`StorageTool format --add-scram`), as KRaft clusters take
//! their first credentials. The votewire binary then runs `topics ensure`
//! and `smoke` (produce, consume in a group, commit) with only
//! `VOTEWIRE_KAFKA_…` variables, as the Terraform's SCRAM mode sets them.

use std::path::Path;
use std::process::{Command, Output};

use votewire_tests::fixture;
use votewire_tests::kafka_cluster::{ClusterOptions, KafkaCluster};

/// The SASL_SSL broker: its address, the CA file that verifies it, and
/// the SCRAM user's password.
struct SecureBroker {
    bootstrap: String,
    ca: std::path::PathBuf,
    password: String,
    _dir: tempfile::TempDir,
    _cluster: KafkaCluster,
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
    // Kafka's PEM key store: the private key (PKCS#8, unencrypted) and the
    // certificate in one file.
    let keystore = dir.path().join("keystore.pem");
    let mut pem = std::fs::read_to_string(&key).unwrap();
    pem.push_str(&std::fs::read_to_string(&ca).unwrap());
    std::fs::write(&keystore, pem).unwrap();
    let secure_port = votewire_tests::free_port();
    let password = votewire_tests::unique("pw");
    let properties = format!(
        "listeners=PLAINTEXT://127.0.0.1:{{base_port}},CONTROLLER://127.0.0.1:{{controller_port}},SECURE://127.0.0.1:{secure_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{{base_port}},SECURE://127.0.0.1:{secure_port}
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SECURE:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.secure.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.secure.ssl.keystore.type=PEM
listener.name.secure.ssl.keystore.location={}
",
        keystore.display()
    );
    let cluster = KafkaCluster::start_with(
        1,
        ClusterOptions {
            extra_properties: properties,
            add_scram: Some(format!(
                "SCRAM-SHA-512=[name=votewire-ingestor,password={password}]"
            )),
        },
    );
    SecureBroker {
        bootstrap: format!("127.0.0.1:{secure_port}"),
        ca,
        password,
        _dir: dir,
        _cluster: cluster,
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
        .env("VOTEWIRE_TOPICS_REPLICATION_FACTOR", "1")
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
    assert_eq!(out.matches("created ").count(), 7, "{out}");

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
