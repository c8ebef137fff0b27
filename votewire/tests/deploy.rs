//! The deployment artifacts: the container image's runtime stage carries
//! exactly the libraries the binary loads, and the Terraform parses and
//! names only real variables and metrics.

use std::process::Command;

fn votewire() -> Command {
    Command::new(env!("CARGO_BIN_EXE_votewire"))
}

/// deploy/Dockerfile's runtime stage, as far as CI can check it without a
/// Docker engine: it installs exactly the Debian packages whose shared
/// libraries the votewire binary loads (a `-sys` crate that links a new
/// system library fails here, not in production), plus the CA
/// certificates TLS verifies against. The C library and GCC's runtime
/// (libc6, libgcc-s1) are in every Debian image.
#[test]
fn the_images_runtime_stage_installs_exactly_the_libraries_the_binary_loads() {
    let ldd = Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_votewire"))
        .output()
        .expect("ldd (Debian's libc-bin)");
    assert!(ldd.status.success());
    let mut needed = std::collections::BTreeSet::new();
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let Some((_, rest)) = line.split_once("=> ") else {
            continue;
        };
        let path = rest.split_whitespace().next().unwrap();
        // /lib is a link to /usr/lib on merged-/usr systems; dpkg knows one.
        let canonical = std::fs::canonicalize(path).unwrap();
        let owner = [std::path::PathBuf::from(path), canonical]
            .iter()
            .find_map(|p| {
                let out = Command::new("dpkg").arg("-S").arg(p).output().ok()?;
                let text = String::from_utf8_lossy(&out.stdout).to_string();
                out.status
                    .success()
                    .then(|| text.split(':').next().unwrap().trim().to_string())
            })
            .unwrap_or_else(|| panic!("no Debian package owns {path}"));
        needed.insert(owner);
    }
    assert!(needed.contains("libc6"), "{needed:?}");
    needed.remove("libc6");
    needed.remove("libgcc-s1");

    let dockerfile =
        std::fs::read_to_string(votewire_tests::workspace_root().join("deploy/Dockerfile"))
            .unwrap();
    let runtime = dockerfile
        .rsplit_once("\nFROM ")
        .expect("a second (runtime) stage")
        .1;
    let install = runtime
        .split("--no-install-recommends")
        .nth(1)
        .expect("the runtime stage installs packages");
    let mut installed: std::collections::BTreeSet<String> = install
        .split_whitespace()
        .take_while(|w| *w != "\\" && *w != "&&")
        .map(str::to_string)
        .collect();
    assert!(
        installed.remove("ca-certificates"),
        "TLS to brokers and sources needs the CA certificates"
    );
    assert_eq!(
        installed, needed,
        "deploy/Dockerfile's runtime packages (left) against the packages owning the libraries `ldd` lists for the binary (right)"
    );
}

/// deploy/terraform, as far as CI can check it without terraform or AWS
/// (docs/deploy.md lists what is not checked): every file parses,
/// references only what is declared and uses everything it declares
/// (deploy/terraform/check.py, python-hcl2 in the stack's venv); the task
/// definitions set only variables votewire reads (`votewire config env`);
/// the autoscaling metrics are instruments votewire defines.
#[test]
fn the_terraform_parses_and_names_only_real_variables_and_metrics() {
    let root = votewire_tests::workspace_root();
    let python = std::env::var("VOTEWIRE_PYTHON")
        .expect("VOTEWIRE_PYTHON: the stack's venv (deploy/local/stack up) holds python-hcl2");
    let out = Command::new(python)
        .arg(root.join("deploy/terraform/check.py"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["files"].as_array().unwrap().len() >= 10, "{report}");
    for want in [
        "aws_msk_cluster.votewire",
        "aws_dynamodb_table.feeds",
        "aws_dynamodb_table.feed_events",
        "aws_ecs_service.ingestor",
        "aws_ecs_service.aggregator",
        "aws_appautoscaling_policy.ingestor_feeds",
        "aws_appautoscaling_policy.aggregator_lag",
        "aws_s3_bucket.archive",
        "aws_iam_role.ingestor",
        "aws_iam_role.aggregator",
    ] {
        assert!(
            report["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == want),
            "{want} in {report}"
        );
    }
    let env = votewire().args(["config", "env"]).output().unwrap();
    let known = String::from_utf8_lossy(&env.stdout).to_string();
    for name in report["environment"].as_array().unwrap() {
        let name = name.as_str().unwrap();
        // Names built in HCL (`VOTEWIRE_KAFKA_PROPERTY_${…}`) show as their
        // prefix; every librdkafka property passes through that prefix.
        // So do the other prefixes `config env` lists as `PREFIX_<NAME>`.
        let ok = name.starts_with("VOTEWIRE_KAFKA_PROPERTY_")
            || name == "VOTEWIRE_TOPIC_"
            || known.lines().any(|l| {
                l.split_whitespace().next().is_some_and(|w| {
                    w == name
                        || w.strip_suffix("<NAME>")
                            .is_some_and(|prefix| name.starts_with(prefix))
                })
            });
        assert!(
            ok,
            "the Terraform sets {name}, which votewire does not read"
        );
    }
    let sources = [
        "ingestors/src/feed_metrics.rs",
        "aggregator/src/fleet/metrics.rs",
    ]
    .map(|p| std::fs::read_to_string(root.join(p)).unwrap())
    .join("\n");
    let metrics = report["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 2, "{report}");
    for m in metrics {
        assert!(
            sources.contains(&format!("\"{}\"", m.as_str().unwrap())),
            "autoscaling reads {m}, which votewire does not define"
        );
    }
}
