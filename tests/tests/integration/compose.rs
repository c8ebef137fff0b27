//! docker-compose.yml describes the same stack as deploy/local/stack and
//! votewire's config. There is no Docker engine here, so this parses the file
//! (PyYAML from the stack's venv) and checks services, ports and environment.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;
use votewire_core::config::{ENV_OVERRIDES, KAFKA_PROPERTY_ENV_PREFIX};
use votewire_tests::{Stack, workspace_root};

fn compose() -> Value {
    let python = Stack::load().var("VOTEWIRE_PYTHON");
    let out = Command::new(&python)
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(workspace_root().join("docker-compose.yml"))
        .output()
        .unwrap_or_else(|e| {
            panic!("running {python}: {e}; start the stack with `deploy/local/stack up`")
        });
    assert!(
        out.status.success(),
        "docker-compose.yml does not parse as YAML: {}",
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
        "kafka",
        "dynamodb",
        "otel-collector",
        "jaeger",
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
        doc["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
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
    assert_eq!(ports("kafka"), ["127.0.0.1:9092:9092"]);
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
    let known: BTreeSet<&str> = ENV_OVERRIDES.iter().map(|o| o.var).collect();
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
                known.contains(var.as_str()) || var.starts_with(KAFKA_PROPERTY_ENV_PREFIX),
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
