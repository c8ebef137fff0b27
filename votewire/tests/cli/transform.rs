//! `votewire transform`: one JSON object per cell, typed errors, mappings
//! and companions read from files.

use votewire_tests::fixture;

use crate::support::votewire;

fn transform(args: &[&str]) -> std::process::Output {
    votewire().arg("transform").args(args).output().unwrap()
}

#[test]
fn transform_prints_one_json_object_per_cell_and_a_summary_line() {
    let path = fixture("clarity_enr/elex-clarity/ga_atkinson_precincts_11-3.xml");
    let out = transform(&["--format", "clarity-xml", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The file has 1,340 count attributes: VoteType aggregates plus leaves.
    let xml = std::fs::read_to_string(&path).unwrap();
    let counts = xml.matches(" votes=\"").count();
    assert_eq!(lines.len(), counts);
    for key in [
        "contest_source_id",
        "contest_name",
        "choice_source_id",
        "choice_name",
        "ru_source_id",
        "ru_name",
        "ru_type",
        "vote_type",
        "vote_type_raw",
        "votes",
    ] {
        assert!(
            lines.iter().all(|l| !l[key].is_null()),
            "{key} present on every line"
        );
    }
    let first = &lines[0];
    assert_eq!(first["contest_source_id"], "1");
    assert_eq!(first["ru_source_id"], "Atkinson");
    assert_eq!(first["vote_type_raw"], "Undervotes");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "one summary line: {stderr}");
    assert!(stderr.starts_with(&format!("{counts} cells")), "{stderr}");
}

#[test]
fn transform_exits_3_with_the_typed_error_on_a_rejected_payload() {
    let html = fixture(
        "clarity_enr/GA_107556_runoff_2021_ALLjson_series/001_20210106T000831Z_v273739/ALL.json",
    );
    let out = transform(&[
        "--format",
        "clarity-json",
        "--feed-id",
        "clarity:GA:107556",
        html.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3), "3: the payload was rejected");
    assert!(out.stdout.is_empty(), "no cells from a rejected payload");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("clarity-json")
            && stderr.contains("clarity:GA:107556")
            && stderr.contains("not_this_format")
            && stderr.contains("byte 0"),
        "{stderr}"
    );
    let unknown = transform(&["--format", "no-such-family", html.to_str().unwrap()]);
    assert_eq!(unknown.status.code(), Some(2), "2: a usage error");
}

#[test]
fn transform_reads_mappings_and_companions_from_files() {
    let root = votewire_tests::workspace_root();
    let page = fixture("sos_html/rc-2014_general_cd1.html");
    let out = transform(&[
        "--format",
        "html-table",
        "--mapping",
        root.join("deploy/mappings/txsos-race-by-county.toml")
            .to_str()
            .unwrap(),
        page.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("\"votes\":114925")
    );
    let all = fixture(
        "clarity_enr/GA_107556_runoff_2021_ALLjson_series/135_20210116T000509Z_v275235/ALL.json",
    );
    let out = transform(&[
        "--format",
        "clarity-json",
        "--companion",
        root.join("deploy/demo/clarity-GA-107556-companion.json")
            .to_str()
            .unwrap(),
        all.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("\"choice_name\":\"Jon Ossoff (Dem)\""),
        "{}",
        &stdout[..300]
    );
}
