//! docker-compose.yml describes the same stack as deploy/local/stack and
//! votewire's config. There is no Docker engine here, so this parses the file
//! (PyYAML from the stack's venv) and checks services, ports and environment.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;
use votewire_core::config::{
    ENV_OVERRIDES, KAFKA_PROPERTY_ENV_PREFIX, SERVICE_VARIABLES, TOPICS_CONFIG_ENV_PREFIX,
};
use votewire_tests::{Stack, workspace_root};

fn compose() -> Value {
    yaml("docker-compose.yml")
}

/// A YAML file of the repository, as JSON (PyYAML from the stack's venv).
fn yaml(relative: &str) -> Value {
    let python = Stack::load().var("VOTEWIRE_PYTHON");
    let out = Command::new(&python)
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(workspace_root().join(relative))
        .output()
        .unwrap_or_else(|e| {
            panic!("running {python}: {e}; start the stack with `deploy/local/stack up`")
        });
    assert!(
        out.status.success(),
        "{relative} does not parse as YAML: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn compose_declares_the_production_like_stack_and_every_service() {
    let doc = compose();
    let services: BTreeSet<&str> = doc["services"]
        .as_object()
        .expect("a services map")
        .keys()
        .map(String::as_str)
        .collect();
    for s in [
        "kafka-1",
        "kafka-2",
        "kafka-3",
        "dynamodb",
        "otel-collector",
        "jaeger",
        "prometheus",
        "grafana",
        "votewire-topics",
        "votewire-ingest",
        "votewire-aggregate",
        "votewire-api",
    ] {
        assert!(
            services.contains(s),
            "service {s} missing from {services:?}"
        );
    }
    assert!(
        doc["services"]["kafka-1"]["environment"]["KAFKA_PROCESS_ROLES"]
            .as_str()
            .is_some_and(|r| r.contains("controller")),
        "Kafka runs in KRaft mode"
    );
    assert!(
        workspace_root()
            .join(
                doc["services"]["votewire-topics"]["build"]["dockerfile"]
                    .as_str()
                    .unwrap()
            )
            .is_file(),
        "the Dockerfile the compose file builds exists"
    );
}

#[test]
fn compose_ports_match_the_local_stack_defaults_and_bind_loopback() {
    let doc = compose();
    let ports = |svc: &str| -> Vec<String> {
        doc["services"][svc]["ports"]
            .as_array()
            .map(|a| a.iter().map(|p| p.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    assert_eq!(ports("kafka-1"), ["127.0.0.1:9092:9092"]);
    assert_eq!(ports("kafka-2"), ["127.0.0.1:9093:9093"]);
    assert_eq!(ports("kafka-3"), ["127.0.0.1:9094:9094"]);
    assert_eq!(ports("dynamodb"), ["127.0.0.1:8000:8000"]);
    assert_eq!(
        ports("otel-collector"),
        ["127.0.0.1:4317:4317", "127.0.0.1:4318:4318"]
    );
    let defaults = votewire_core::VotewireConfig::default();
    assert_eq!(defaults.kafka.bootstrap_servers, "127.0.0.1:9092");
    assert_eq!(ports("votewire-api"), ["127.0.0.1:8080:8080"]);
    assert_eq!(defaults.api.listen, "127.0.0.1:8080");
    for (name, svc) in doc["services"].as_object().unwrap() {
        for p in svc["ports"].as_array().into_iter().flatten() {
            assert!(
                p.as_str().unwrap().starts_with("127.0.0.1:"),
                "{name} publishes {p} beyond loopback"
            );
        }
    }
}

#[test]
fn every_votewire_variable_in_compose_is_one_the_config_reads() {
    let doc = compose();
    let known: BTreeSet<&str> = ENV_OVERRIDES
        .iter()
        .map(|o| o.var)
        .chain(SERVICE_VARIABLES.iter().map(|(v, _)| *v))
        .collect();
    let mut checked = 0;
    for (name, svc) in doc["services"].as_object().unwrap() {
        if !name.starts_with("votewire-") {
            continue;
        }
        let env = svc["environment"]
            .as_object()
            .expect("votewire services set env");
        for var in env.keys().filter(|k| k.starts_with("VOTEWIRE_")) {
            assert!(
                known.contains(var.as_str())
                    || var.starts_with(KAFKA_PROPERTY_ENV_PREFIX)
                    || var.starts_with(TOPICS_CONFIG_ENV_PREFIX),
                "{name} sets {var}, which votewire does not read"
            );
            checked += 1;
        }
        assert!(
            env["VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS"].as_str().is_some(),
            "{name} is told where Kafka is"
        );
    }
    assert!(checked >= 20, "checked {checked} variables");
}

/// Every file compose mounts exists, and the observability chain is wired
/// end to end: services export OTLP to the collector, the collector sends
/// traces to Jaeger and exposes metrics where Prometheus scrapes them,
/// Grafana's data source is that Prometheus and its dashboard is
/// provisioned from the mounted directory.
#[test]
fn compose_mounts_exist_and_the_observability_chain_is_wired() {
    let doc = compose();
    let mut mounts = 0;
    for (name, svc) in doc["services"].as_object().unwrap() {
        for v in svc["volumes"].as_array().into_iter().flatten() {
            let host = v.as_str().unwrap().split(':').next().unwrap();
            assert!(
                workspace_root().join(host).exists(),
                "{name} mounts {host}, which does not exist"
            );
            mounts += 1;
        }
    }
    assert!(mounts >= 6, "{mounts} mounts checked");

    let collector = yaml("deploy/otel-collector.yaml");
    let pipelines = &collector["service"]["pipelines"];
    assert!(
        pipelines["traces"]["exporters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "otlp/jaeger")
    );
    assert_eq!(
        collector["exporters"]["otlp/jaeger"]["endpoint"],
        "jaeger:4317"
    );
    let prom_endpoint = collector["exporters"]["prometheus"]["endpoint"]
        .as_str()
        .unwrap();
    let prom_port = prom_endpoint.rsplit(':').next().unwrap();
    let prometheus = yaml("deploy/prometheus.yaml");
    let targets: Vec<String> = prometheus["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["static_configs"].as_array().unwrap().clone())
        .flat_map(|s| s["targets"].as_array().unwrap().clone())
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert!(
        targets.contains(&format!("otel-collector:{prom_port}")),
        "Prometheus scrapes the collector's exporter: {targets:?}"
    );
    for t in &targets {
        let host = t.split(':').next().unwrap();
        assert!(
            doc["services"][host].is_object(),
            "Prometheus scrapes {t}, which is no compose service"
        );
    }
    for svc in ["votewire-ingest", "votewire-aggregate"] {
        let listen = doc["services"][svc]["environment"]["VOTEWIRE_METRICS_LISTEN"]
            .as_str()
            .unwrap_or_else(|| panic!("{svc} serves /metrics"));
        let port = listen.rsplit(':').next().unwrap();
        assert!(
            targets.contains(&format!("{svc}:{port}")),
            "{svc} is scraped"
        );
    }
    let datasource = yaml("deploy/grafana/provisioning/datasources/prometheus.yaml");
    assert_eq!(
        datasource["datasources"][0]["url"],
        "http://prometheus:9090"
    );
    let uid = datasource["datasources"][0]["uid"].as_str().unwrap();
    let provider = yaml("deploy/grafana/provisioning/dashboards/votewire.yaml");
    let in_container = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    assert!(
        doc["services"]["grafana"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v
                .as_str()
                .unwrap()
                .starts_with(&format!("./deploy/grafana/dashboards:{in_container}"))),
        "the dashboards directory is mounted where the provider reads"
    );
    let dashboard: Value = serde_json::from_slice(
        &std::fs::read(workspace_root().join("deploy/grafana/dashboards/votewire.json")).unwrap(),
    )
    .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    for p in panels {
        assert_eq!(p["datasource"]["uid"], uid, "{}", p["title"]);
    }
    for want in ["health", "Freshness", "lag", "Dead letters", "p99 fetch"] {
        assert!(
            panels
                .iter()
                .any(|p| p["title"].as_str().unwrap().contains(want)),
            "a panel for {want}"
        );
    }
}

/// The compose cluster runs what the local stack runs: the same Kafka
/// release as deploy/local/kafka/pom.xml, and every replication and
/// topic-creation setting equal to the stack's generated node properties
/// (the apache/kafka image reads `KAFKA_A_B` as `a.b`).
#[test]
fn compose_kafka_matches_the_local_stacks_release_and_replication_settings() {
    let doc = compose();
    let pom = std::fs::read_to_string(workspace_root().join("deploy/local/kafka/pom.xml")).unwrap();
    let version = pom
        .split("<kafka.version>")
        .nth(1)
        .and_then(|r| r.split("</kafka.version>").next())
        .expect("kafka.version in the POM");
    let stack = Stack::load();
    let node =
        std::path::PathBuf::from(stack.var("VOTEWIRE_STATE_DIR")).join("kafka/node-1.properties");
    let properties = std::fs::read_to_string(&node)
        .unwrap_or_else(|e| panic!("{} (deploy/local/stack up writes it): {e}", node.display()));
    let stack_value = |key: &str| {
        properties
            .lines()
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
            .next_back()
    };
    assert_eq!(
        stack.var("VOTEWIRE_KAFKA_NODES"),
        "3",
        "the comparison is with the default three-node stack"
    );
    for i in 1..=3 {
        let svc = &doc["services"][format!("kafka-{i}")];
        assert_eq!(
            svc["image"].as_str(),
            Some(format!("apache/kafka:{version}").as_str()),
            "kafka-{i} runs the POM's release"
        );
        let env = svc["environment"].as_object().expect("kafka env");
        for key in [
            "auto.create.topics.enable",
            "default.replication.factor",
            "min.insync.replicas",
            "offsets.topic.replication.factor",
            "transaction.state.log.replication.factor",
            "transaction.state.log.min.isr",
            "share.coordinator.state.topic.replication.factor",
            "share.coordinator.state.topic.min.isr",
            "group.initial.rebalance.delay.ms",
            "process.roles",
        ] {
            let var = format!("KAFKA_{}", key.to_ascii_uppercase().replace('.', "_"));
            assert_eq!(
                env.get(&var).and_then(Value::as_str).map(str::to_string),
                stack_value(key),
                "kafka-{i}: {var} in docker-compose.yml against {key} in {}",
                node.display()
            );
        }
    }
    let votewire_env = &doc["services"]["votewire-ingest"]["environment"];
    assert_eq!(
        votewire_env["VOTEWIRE_TOPICS_REPLICATION_FACTOR"].as_str(),
        Some("3")
    );
}
