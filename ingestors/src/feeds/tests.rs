//! The registry accepts the shipped examples and reports every broken entry
//! with its file, line and field.

use std::path::Path;

use super::*;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn the_shipped_examples_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/feeds/examples");
    let feeds = load_registry(&dir).unwrap_or_else(|errs| {
        panic!(
            "{}",
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let ids: Vec<&str> = feeds
        .iter()
        .map(|f| f.entry.id.get_ref().as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "clarity:GA:107556",
            "ap-interactive:GA",
            "csv:openelections-ga",
            "html:txsos:rc-2014-cd1",
            "ap:v2:2021-01-05"
        ]
    );
    assert!(!feeds[4].entry.enabled);
    assert!(
        matches!(feeds[4].entry.source.get_ref(), SourceConfig::Ap(crate::sources::ap::ApSource { api_key: SecretRef::Env(v), .. }) if v == "FEED_SECRET_AP_API_KEY")
    );
    let text = std::fs::read_to_string(&feeds[2].file).unwrap();
    let third_entry_line = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim() == "[[feed]]")
        .nth(2)
        .map(|(i, _)| i + 1)
        .unwrap();
    assert_eq!(
        feeds[2].line, third_entry_line,
        "feeds remember where they were defined"
    );
}

const BROKEN: &str = r#"[[feed]]
id = "a"
family = "no-such-family"
election_id = "e"
[feed.source]
kind = "http"
url = "ftp://example.org/x"
headers = { "Authorization" = "Bearer hunter2" }

[[feed]]
id = "b"
family = "html-table"
election_id = "e"
[feed.source]
kind = "html"
url = "https://example.org/page.htm"
[feed.cadence]
interval = "fast"
jitter = "1s"
stale_after = "10m"
retry_max = "soon"
"#;

#[test]
fn every_problem_is_reported_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "broken.toml", BROKEN);
    write(
        dir.path(),
        "dup.toml",
        "[[feed]]\nid = \"a\"\nfamily = \"csv\"\nelection_id = \"e\"\n[feed.source]\nkind = \"html\"\nurl = \"https://x\"\n",
    );
    let errs = load_registry(dir.path()).unwrap_err();
    let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
    let has = |needle: &str| {
        assert!(
            lines.iter().any(|l| l.contains(needle)),
            "{needle} not in:\n{}",
            lines.join("\n")
        )
    };
    has("broken.toml:3: a family: unknown family \"no-such-family\"");
    has("a source.url: \"ftp://example.org/x\" is not an http(s) URL");
    has("a source.headers: Authorization carries a credential");
    has("b mapping: family html-table needs a [feed.mapping] or a mapping_file");
    has("b cadence.interval: \"fast\" is not a duration");
    has("b cadence.retry_max: \"soon\" is not a duration");
    has("dup.toml:2: a id: duplicate id; first defined at");
    has("dup.toml:3: a family: an html source is read by the html-table family");
    assert!(
        !lines.iter().any(|l| l.contains("hunter2")),
        "secrets never echo"
    );
}

#[test]
fn unknown_fields_and_bad_toml_name_their_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "typo.toml",
        "[[feed]]\nid = \"a\"\nfamly = \"csv\"\n",
    );
    let errs = load_registry(dir.path()).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].line >= 1 && errs[0].message.contains("famly"),
        "{}",
        errs[0]
    );
    write(dir.path(), "typo.toml", "[[feed]\nid = \"a\"\n");
    let errs = load_registry(dir.path()).unwrap_err();
    assert_eq!(
        (errs[0].line, errs[0].field.as_str()),
        (1, "toml"),
        "{}",
        errs[0]
    );
}

/// Inside `[feed.source]` the kind's own struct refuses what it does not
/// know, and a kind no module declares is refused with the known ones.
#[test]
fn a_source_field_or_kind_that_does_not_exist_is_refused_on_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let entry = |source: &str| {
        format!(
            "[[feed]]\nid = \"a\"\nfamily = \"csv\"\nelection_id = \"e\"\n[feed.source]\n{source}\n"
        )
    };
    for (source, says) in [
        (
            "kind = \"http\"\nurl = \"https://example.org/x\"\nurll = \"y\"",
            "urll",
        ),
        (
            "kind = \"gopher\"\nurl = \"gopher://example.org\"",
            "gopher",
        ),
        ("url = \"https://example.org/x\"", "kind"),
    ] {
        write(dir.path(), "feeds.toml", &entry(source));
        let errs = load_registry(dir.path()).unwrap_err();
        assert_eq!(errs.len(), 1, "{source}: {errs:?}");
        assert!(errs[0].message.contains(says), "{source}: {}", errs[0]);
        assert!((5..=7).contains(&errs[0].line), "{source}: {}", errs[0]);
    }
}

/// Every shipped example feed's config answers for the kind its `kind`
/// tag names, and a kind's `resolve_paths` moves exactly the fields its
/// registry entry lists as paths (which the API and `feeds add` anchor).
#[test]
fn each_source_config_belongs_to_its_registered_kind() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/feeds/examples");
    let feeds = load_registry(&dir).expect("the examples validate");
    let mut kinds: Vec<&str> = Vec::new();
    for f in &feeds {
        let text = std::fs::read_to_string(&f.file).unwrap();
        let table: toml::Table = text.parse().unwrap();
        let tagged = table["feed"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"].as_str() == Some(f.entry.id.get_ref()))
            .and_then(|e| e["source"]["kind"].as_str())
            .unwrap()
            .to_string();
        let kind = f.entry.source.get_ref().kind_config().kind();
        assert_eq!(kind.name, tagged, "{}", f.entry.id.get_ref());
        kinds.push(kind.name);
    }
    kinds.sort();
    kinds.dedup();
    assert_eq!(
        kinds.len(),
        crate::sources::SOURCES.len(),
        "one example per kind"
    );

    let sftp = crate::sources::sftp::SftpSource {
        host: "h".into(),
        port: 22,
        user: "u".into(),
        key_file: "key".into(),
        known_hosts: "known_hosts".into(),
        glob: "/drop/*.csv".into(),
        min_age: "5s".into(),
        archive_dir: Some("done".into()),
        done_marker: None,
    };
    let mut moved = sftp.clone();
    crate::sources::SourceKindConfig::resolve_paths(&mut moved, &|p| Path::new("/feeds").join(p));
    let as_json = |c: &crate::sources::sftp::SftpSource| {
        serde_json::json!({
            "key_file": c.key_file, "known_hosts": c.known_hosts, "glob": c.glob,
            "archive_dir": c.archive_dir, "host": c.host, "user": c.user,
        })
    };
    let (before, after) = (as_json(&sftp), as_json(&moved));
    let changed: Vec<&str> = before
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| before[k.as_str()] != after[k.as_str()])
        .map(String::as_str)
        .collect();
    let mut listed = crate::sources::sftp::KIND.path_fields.to_vec();
    listed.sort();
    assert_eq!(changed, listed);
}

#[test]
fn a_mapping_the_family_cannot_read_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "m.toml",
        "[[feed]]\nid = \"c\"\nfamily = \"csv\"\nelection_id = \"e\"\n[feed.source]\nkind = \"http\"\nurl = \"https://x/y.csv\"\n[feed.mapping]\ncolumnz = \"x\"\n",
    );
    let errs = load_registry(dir.path()).unwrap_err();
    assert!(
        errs[0].to_string().contains("c mapping:") && errs[0].to_string().contains("columnz"),
        "{}",
        errs[0]
    );
    write(
        dir.path(),
        "m.toml",
        "[[feed]]\nid = \"c\"\nfamily = \"ap-v2\"\nelection_id = \"e\"\n[feed.source]\nkind = \"ap\"\nurl = \"https://x\"\napi_key = { env = \"lower case\" }\n",
    );
    let errs = load_registry(dir.path()).unwrap_err();
    assert!(
        errs[0].to_string().contains("source.api_key"),
        "{}",
        errs[0]
    );
}

#[test]
fn durations_parse_in_the_units_operators_write() {
    use std::time::Duration;
    assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("6h"), Some(Duration::from_secs(21_600)));
    assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5_400)));
    assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1_500)));
    assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
    assert_eq!(parse_duration("5 minutes"), Some(Duration::from_secs(300)));
    assert_eq!(parse_duration("PT90S"), Some(Duration::from_secs(90)));
    for refused in ["", "5", "-5s", "1 month", "2y", "5 lightyears", "s"] {
        assert_eq!(parse_duration(refused), None, "{refused:?}");
    }
    let usage = super::duration_arg("90 parsecs").unwrap_err();
    assert!(
        usage.contains("\"90 parsecs\" is not a duration"),
        "{usage}"
    );
}

#[test]
fn a_results_section_links_the_feed_and_empty_ids_are_rejected_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let feed = "[[feed]]\nid = \"clarity:GA:bacon\"\nfamily = \"clarity-xml\"\nelection_id = \"e\"\npriority = 5\n\
                [feed.source]\nkind = \"http\"\nurl = \"https://x/detail.xml\"\n[feed.results]\n";
    write(
        dir.path(),
        "r.toml",
        &format!("{feed}contests = {{ \"1\" = \"ga-2020-president\" }}\nparent = \"GA\"\n"),
    );
    let feeds = load_registry(dir.path()).expect("a valid results section");
    let r = feeds[0].entry.results.as_ref().unwrap().get_ref();
    assert_eq!(r.contests["1"], "ga-2020-president");
    assert_eq!(r.parent.as_deref(), Some("GA"));
    write(
        dir.path(),
        "r.toml",
        &format!("{feed}contests = {{ \"1\" = \"\" }}\n"),
    );
    let errs = load_registry(dir.path()).unwrap_err();
    let e = errs[0].to_string();
    assert!(
        e.contains("r.toml:9") && e.contains("results.contests"),
        "file, line of [feed.results] and the field: {e}"
    );
    write(
        dir.path(),
        "r.toml",
        &format!("{feed}contest = {{ \"1\" = \"x\" }}\n"),
    );
    let errs = load_registry(dir.path()).unwrap_err();
    assert!(errs[0].to_string().contains("contest"), "{}", errs[0]);
}

#[test]
fn a_source_that_sends_a_credential_must_use_https_unless_it_is_on_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let feed = |kind: &str, url: &str, secret: &str| {
        format!(
            "[[feed]]\nid = \"s\"\nfamily = \"ap-v2\"\nelection_id = \"e\"\n[feed.source]\n\
             kind = \"{kind}\"\nurl = \"{url}\"\n{secret}\n"
        )
    };
    let ap_key = "api_key = { env = \"FEED_SECRET_AP\" }";
    let header = "secret_headers = { \"x-api-key\" = { env = \"FEED_SECRET_AP\" } }";
    for (kind, secret) in [("ap", ap_key), ("http", header)] {
        for refused in [
            "http://api.example.org/v2/elections",
            "http://10.0.0.8/v2/elections",
            "http://localhost.example.org/x",
        ] {
            write(dir.path(), "s.toml", &feed(kind, refused, secret));
            let errs = load_registry(dir.path()).expect_err(refused);
            let text = errs[0].to_string();
            assert!(
                text.contains("source.url") && text.contains("not https"),
                "{kind} {refused}: {text}"
            );
        }
        for allowed in [
            "https://api.example.org/v2/elections",
            "http://127.0.0.1:8080/v2/elections",
            "http://[::1]:8080/x",
            "http://localhost:9000/x",
        ] {
            write(dir.path(), "s.toml", &feed(kind, allowed, secret));
            if let Err(errs) = load_registry(dir.path()) {
                assert!(
                    !errs.iter().any(|e| e.to_string().contains("not https")),
                    "{kind} {allowed}: {errs:?}"
                );
            }
        }
    }
    // Without a credential, plain http is any source's choice.
    write(
        dir.path(),
        "s.toml",
        "[[feed]]\nid = \"p\"\nfamily = \"csv\"\nelection_id = \"e\"\n[feed.source]\n\
         kind = \"http\"\nurl = \"http://results.example.org/x.csv\"\n[feed.cadence]\n\
         every = \"30s\"\njitter = \"1s\"\n",
    );
    if let Err(errs) = load_registry(dir.path()) {
        assert!(
            !errs.iter().any(|e| e.to_string().contains("not https")),
            "{errs:?}"
        );
    }
}

/// The walkthroughs' entries set an interval and a staleness only: the
/// jitter that keeps feeds out of lockstep has a default.
#[test]
fn a_cadence_without_a_jitter_gets_one_second() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "tx.toml",
        "[[feed]]\nid = \"html:txsos:senate\"\nfamily = \"csv\"\nelection_id = \"e\"\n\
         [feed.source]\nkind = \"http\"\nurl = \"https://example.org/a.csv\"\n\
         [feed.cadence]\ninterval = \"20s\"\nstale_after = \"30m\"\n",
    );
    let feeds = load_registry(dir.path()).unwrap_or_else(|errs| panic!("{errs:?}"));
    assert_eq!(feeds.len(), 1);
    let cadence = feeds[0]
        .entry
        .cadence
        .as_ref()
        .expect("a cadence")
        .get_ref();
    assert_eq!(cadence.jitter, "1s");
    assert_eq!(cadence.interval, "20s");
}

#[test]
fn a_limits_section_may_set_one_limit_and_keep_the_others() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "slow.toml",
        "[[feed]]\nid = \"csv:slow\"\nfamily = \"csv\"\nelection_id = \"e\"\n\
         [feed.source]\nkind = \"http\"\nurl = \"https://example.org/a.csv\"\n\
         [feed.limits]\ntransform_timeout = \"30s\"\n",
    );
    let feeds = load_registry(dir.path()).unwrap_or_else(|errs| panic!("{errs:?}"));
    let limits = feeds[0].entry.limits();
    assert_eq!(limits.transform_timeout.as_deref(), Some("30s"));
    assert_eq!(
        (limits.timeout.as_str(), limits.max_bytes),
        ("20s", 64 * 1024 * 1024),
        "the limits it does not name keep their defaults"
    );
}

/// The operators' walkthrough: a feed file in one folder names a shared
/// mapping and a companion relative to itself, in a registry whose files
/// sit in sub-folders; wherever votewire runs, they resolve the same.
#[test]
fn paths_resolve_against_the_feed_file_and_sub_folders_are_read() {
    let root = tempfile::tempdir().unwrap();
    let nested = root.path().join("states/tx");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::create_dir_all(root.path().join("mappings")).unwrap();
    let shipped =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/mappings/txsos-race-by-county.toml");
    std::fs::copy(&shipped, root.path().join("mappings/tx.toml")).unwrap();
    std::fs::write(root.path().join("mappings/names.json"), "{}").unwrap();
    write(
        &nested,
        "senate.toml",
        "[[feed]]\nid = \"html:txsos:senate\"\nfamily = \"html-table\"\nelection_id = \"e\"\n\
         mapping_file = \"../../mappings/tx.toml\"\ncompanion = \"../../mappings/names.json\"\n\
         [feed.source]\nkind = \"html\"\nurl = \"https://x/p.htm\"\n",
    );
    // An editor's backup beside it is not a feed file.
    write(&nested, ".senate.toml.swp", "not toml");
    let feeds = load_registry(root.path()).unwrap_or_else(|errs| panic!("{errs:?}"));
    assert_eq!(feeds.len(), 1);
    let entry = &feeds[0].entry;
    let mapping = entry.mapping.as_ref().expect("the mapping file was read");
    assert_eq!(mapping.get_ref()["layout"].as_str(), Some("unit-rows"));
    assert_eq!(
        mapping.get_ref()["time_zone"].as_str(),
        Some("America/Chicago")
    );
    assert_eq!(
        entry.companion.as_ref().unwrap().get_ref(),
        &nested.join("../../mappings/names.json")
    );

    // Both a mapping and a mapping file, a missing mapping file and a
    // missing companion are each an error at the feed's line.
    write(
        &nested,
        "senate.toml",
        "[[feed]]\nid = \"s\"\nfamily = \"html-table\"\nelection_id = \"e\"\n\
         mapping_file = \"../../mappings/tx.toml\"\n[feed.mapping]\nlayout = \"unit-rows\"\n\
         [feed.source]\nkind = \"html\"\nurl = \"https://x/p.htm\"\n\n\
         [[feed]]\nid = \"t\"\nfamily = \"html-table\"\nelection_id = \"e\"\n\
         mapping_file = \"no-such.toml\"\ncompanion = \"none.json\"\n\
         [feed.source]\nkind = \"html\"\nurl = \"https://x/p.htm\"\n",
    );
    let errs: Vec<String> = load_registry(root.path())
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    let has = |s: &str| assert!(errs.iter().any(|e| e.contains(s)), "{s:?} not in {errs:#?}");
    has("senate.toml:5: s mapping_file: set [feed.mapping] or mapping_file, not both");
    has("t mapping_file: cannot read");
    has("t companion: cannot read");
}

#[test]
fn an_election_table_sets_its_feeds_mode_and_zero_counts_and_is_defined_once() {
    let dir = tempfile::tempdir().unwrap();
    let feed = |id: &str, election: &str| {
        format!(
            "[[feed]]\nid = \"{id}\"\nfamily = \"clarity-xml\"\nelection_id = \"{election}\"\n\
             [feed.source]\nkind = \"http\"\nurl = \"https://x/{id}.xml\"\n"
        )
    };
    write(
        dir.path(),
        "a.toml",
        &(feed("a", "e1") + &feed("b", "e2") + &feed("c", "e3")),
    );
    write(
        dir.path(),
        "b.toml",
        "[[election]]\nid = \"e1\"\nzero_counts = true\n\n[[election]]\nid = \"e2\"\nmode = \"rehearsal\"\n",
    );
    let feeds = load_registry(dir.path()).expect("a valid registry");
    let settings: Vec<ElectionSettings> = feeds.iter().map(|f| f.entry.election).collect();
    assert_eq!(
        settings,
        [
            ElectionSettings {
                mode: ElectionMode::Live,
                zero_counts: true
            },
            ElectionSettings {
                mode: ElectionMode::Rehearsal,
                zero_counts: false
            },
            // No table: live, real counts.
            ElectionSettings::default(),
        ]
    );

    write(
        dir.path(),
        "c.toml",
        "[[election]]\nid = \"e1\"\nmode = \"test\"\n",
    );
    let errs = load_registry(dir.path()).unwrap_err();
    let e = errs[0].to_string();
    assert!(
        e.contains("c.toml:1") && e.contains("duplicate election") && e.contains("b.toml:1"),
        "{e}"
    );
    write(
        dir.path(),
        "c.toml",
        "[[election]]\nid = \"e4\"\nmode = \"dress\"\n",
    );
    let errs = load_registry(dir.path()).unwrap_err();
    assert!(errs[0].to_string().contains("c.toml"), "{}", errs[0]);
}
