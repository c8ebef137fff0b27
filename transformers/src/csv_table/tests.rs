//! csv against the real OpenElections, PA and CO files. Expected totals come
//! from a simple line splitter in the test kit, independent of the csv crate.

use std::collections::BTreeMap;

use votewire_schemas::*;

use crate::error::ErrorClass;
use crate::payload::FamilyInputs;
use crate::testkit::{ctx, fixture, split_csv_line};

fn transform(
    bytes: &[u8],
    ctx: &crate::payload::PayloadContext,
    inputs: &crate::payload::FamilyInputs,
) -> Result<crate::testkit::Out, crate::error::TransformError> {
    crate::testkit::materialized(super::transform, bytes, ctx, inputs)
}

const FILES: [&str; 7] = [
    "precinct_csv/openelections-data-ga/20181106__ga__general__fulton__precinct.csv",
    "precinct_csv/openelections-data-ga/20200609__ga__primary__president.csv",
    "precinct_csv/openelections-data-ga/20210105__ga__runoff.csv",
    "precinct_csv/openelections-data-ga/20241105__ga__general__precinct-level.csv",
    "precinct_csv/openelections-data-pa/20201103__pa__general__allegheny__precinct.csv",
    "precinct_csv/openelections-data-pa/20201103__pa__general__county.csv",
    "precinct_csv/openelections-data-pa/20201103__pa__general__delaware__precinct.csv",
];

const VOTE_HEADERS: [&str; 13] = [
    "votes",
    "total_votes",
    "election_day",
    "election_day_votes",
    "advanced_votes",
    "absentee_by_mail_votes",
    "provisional_votes",
    "absentee_by_mail",
    "provisional",
    "advance_in_person_1",
    "advance_in_person_2",
    "advance_in_person_3",
    "absentee",
];

/// Per vote column: (non-empty fields, sum), by a plain line split.
fn independent(text: &str) -> BTreeMap<String, (usize, i64)> {
    let mut lines = text.lines();
    let header = split_csv_line(lines.next().unwrap());
    let mut m = BTreeMap::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f = split_csv_line(line);
        for (i, h) in header.iter().enumerate() {
            if VOTE_HEADERS.contains(&h.as_str()) || h == "mail" {
                let v = f.get(i).map(|s| s.trim()).unwrap_or("");
                if !v.is_empty() {
                    let e = m.entry(h.clone()).or_insert((0, 0));
                    e.0 += 1;
                    e.1 += v.replace(',', "").parse::<i64>().unwrap();
                }
            }
        }
    }
    m
}

fn by_column(cells: &[VoteCell]) -> BTreeMap<String, (usize, i64)> {
    let mut m = BTreeMap::new();
    for c in cells {
        let e = m.entry(c.vote_type_raw.to_string()).or_insert((0, 0));
        e.0 += 1;
        e.1 += c.votes;
    }
    m
}

/// The mapping for OpenElections files that do not end with a newline (two
/// of the PA files), which the family otherwise reads as cut.
fn no_final_newline() -> toml::Table {
    toml::from_str("final_newline = \"optional\"").unwrap()
}

/// The inputs a real file needs: the PA files that end without a newline
/// say so.
fn inputs_for(bytes: &[u8], optional: &toml::Table) -> FamilyInputs<'static> {
    // Leaked once per test process: a FamilyInputs borrows its mapping.
    let _ = optional;
    if bytes.ends_with(b"\n") {
        FamilyInputs::default()
    } else {
        FamilyInputs {
            mapping: Some(Box::leak(Box::new(no_final_newline()))),
            ..FamilyInputs::default()
        }
    }
}

#[test]
fn every_real_csv_matches_an_independent_count_column_by_column() {
    let optional = no_final_newline();
    for f in FILES {
        let bytes = fixture(f);
        let out = transform(&bytes, &ctx("csv:test"), &inputs_for(&bytes, &optional))
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(
            by_column(&out.cells),
            independent(std::str::from_utf8(&bytes).unwrap()),
            "{f}"
        );
    }
}

#[test]
fn ids_follow_the_cli_contract() {
    let out = transform(
        &fixture("precinct_csv/openelections-data-ga/20210105__ga__runoff.csv"),
        &ctx("csv:openelections-ga"),
        &FamilyInputs::default(),
    )
    .unwrap();
    let c = out
        .cells
        .iter()
        .find(|c| {
            &*c.contest.source_id == "Public Service Commissioner|4"
                && &*c.unit.source_id == "Appling|1B"
        })
        .expect("contest office|district, unit county|precinct");
    let blackman = out
        .cells
        .iter()
        .find(|x| {
            x.contest.source_id == c.contest.source_id
                && &*x.choice.source_id == "Daniel Blackman|Democrat"
        })
        .expect("choice candidate|party");
    assert_eq!(&*blackman.choice.name, "Daniel Blackman");
    assert_eq!(blackman.unit.parent_source_id.as_deref(), Some("Appling"));
    assert_eq!(blackman.unit.unit_type, UnitType::Precinct);
    // GA 2021 has no total column: only vote types.
    let types: std::collections::BTreeSet<VoteType> =
        out.cells.iter().map(|c| c.vote_type).collect();
    assert_eq!(
        types,
        [
            VoteType::ElectionDay,
            VoteType::Early,
            VoteType::Absentee,
            VoteType::Provisional
        ]
        .into()
    );
    let senate = out
        .cells
        .iter()
        .find(|c| c.contest.source_id.starts_with("U.S. Senate"))
        .unwrap();
    assert!(
        !senate.contest.source_id.ends_with('|'),
        "just office when district is empty"
    );
}

#[test]
fn county_level_files_pseudo_rows_and_measures_are_classified() {
    let out = transform(
        &fixture("precinct_csv/openelections-data-pa/20201103__pa__general__county.csv"),
        &ctx("csv:pa"),
        &FamilyInputs {
            mapping: Some(&no_final_newline()),
            ..FamilyInputs::default()
        },
    )
    .unwrap();
    let reg = out
        .cells
        .iter()
        .find(|c| &*c.contest.source_id == "Registered Voters" && &*c.unit.source_id == "Clinton")
        .unwrap();
    assert_eq!(reg.unit.unit_type, UnitType::County);
    assert_eq!(reg.contest.kind, ContestKind::Pseudo);
    assert_eq!(reg.choice.kind, ChoiceKind::RegisteredVoters);
    assert_eq!(
        &*reg.choice.source_id, "|",
        "choice is candidate|party, both empty"
    );
    assert_eq!(reg.votes, 22_387);
    assert_eq!(
        out.cells
            .iter()
            .filter(
                |c| &*c.contest.source_id == "Registered Voters" && &*c.unit.source_id == "Clinton"
            )
            .count(),
        1,
        "empty vote-type fields are not cells"
    );
    let delaware = transform(
        &fixture(
            "precinct_csv/openelections-data-pa/20201103__pa__general__delaware__precinct.csv",
        ),
        &ctx("csv:pa"),
        &FamilyInputs {
            mapping: Some(&no_final_newline()),
            ..FamilyInputs::default()
        },
    )
    .unwrap();
    let over = delaware
        .cells
        .iter()
        .find(|c| &*c.choice.name == "Over Votes")
        .unwrap();
    assert_eq!(over.choice.kind, ChoiceKind::OverVote);
}

#[test]
fn swapped_columns_thousands_separators_bom_and_crlf() {
    let forest = "\u{feff}county,precinct,office,district,candidate,party,votes,election_day,mail\r\n\
                  Forest,BARNETT,President,,Joseph R. Biden,DEM,\"1,089\",700,389\r\n\
                  Forest,BARNETT,Amendment,,Yes,,12,,\r\n\
                  Forest,BARNETT,Amendment,,No,,1,,\r\n";
    let out = transform(
        forest.as_bytes(),
        &ctx("csv:forest"),
        &FamilyInputs::default(),
    )
    .unwrap();
    let biden = &out.cells[0];
    assert_eq!(&*biden.choice.source_id, "Joseph R. Biden|DEM");
    assert_eq!(biden.choice.party.as_deref(), Some("DEM"));
    assert_eq!(
        (biden.votes, &*biden.vote_type_raw, biden.vote_type),
        (1089, "votes", VoteType::Total)
    );
    assert_eq!(&*biden.unit.source_id, "Forest|BARNETT");
    assert_eq!(out.cells.len(), 5);
    let no = out.cells.iter().find(|c| &*c.choice.name == "No").unwrap();
    assert_eq!(
        (no.votes, no.contest.kind, no.choice.kind),
        (1, ContestKind::BallotMeasure, ChoiceKind::No)
    );
}

#[test]
fn a_column_mapping_reads_any_csv() {
    let text = "\"Precinct \nCode\",Contest Title,Choice Name,Total Votes,Total Ballots\n2181207001,Mayor,Ann,\"1,569\",2000\n";
    let mapping: toml::Table = toml::from_str(
        r#"precinct = "precinct code"
contest = "Contest Title"
choice = "Choice Name"
vote_columns = ["Total Votes"]"#,
    )
    .unwrap();
    let inputs = FamilyInputs {
        mapping: Some(&mapping),
        ..FamilyInputs::default()
    };
    let out = transform(text.as_bytes(), &ctx("csv:boulder"), &inputs).unwrap();
    assert_eq!(out.cells.len(), 1, "Total Ballots is not a vote column");
    assert_eq!(
        (&*out.cells[0].unit.name, out.cells[0].votes),
        ("2181207001", 1569)
    );
}

#[test]
fn the_co_statewide_zip_is_read_whole_and_decoded_from_latin_1() {
    let zip = fixture("precinct_csv/CO_SOS_2024G_rlauxe/2024GeneralPrecinctLevelResults.zip");
    let out = transform(&zip, &ctx("csv:co"), &FamilyInputs::default()).unwrap();
    // SOURCES.md counts 283,725 data rows; the last is the trailer
    // "End of worksheet" with empty fields, which is not a count.
    let mut raw = Vec::new();
    std::io::Read::read_to_end(
        &mut zip::ZipArchive::new(std::io::Cursor::new(&zip[..]))
            .unwrap()
            .by_index(0)
            .unwrap(),
        &mut raw,
    )
    .unwrap();
    let text: String = raw.iter().map(|&b| b as char).collect(); // Latin-1
    let rows: Vec<Vec<String>> = text.lines().skip(1).map(split_csv_line).collect();
    assert_eq!(rows.len(), 283_725);
    let counted: Vec<&Vec<String>> = rows
        .iter()
        .filter(|r| !r[2].is_empty() && !r[5].is_empty())
        .collect();
    assert_eq!(out.cells.len(), counted.len());
    assert_eq!(
        out.cells.iter().map(|c| c.votes).sum::<i64>(),
        counted
            .iter()
            .map(|r| r[5].parse::<i64>().unwrap())
            .sum::<i64>()
    );
    assert!(
        out.cells
            .iter()
            .any(|c| c.choice.name.contains("Karina García"))
    );
    assert!(
        out.cells
            .iter()
            .all(|c| c.vote_type == VoteType::Total && &*c.vote_type_raw == "Total Votes")
    );
}

#[test]
fn bad_csv_is_rejected_with_line_and_column() {
    let bad = "county,precinct,office,district,party,candidate,votes\nFulton,01A,Governor,,REP,KEMP,17x\n";
    let e = transform(bad.as_bytes(), &ctx("csv:bad"), &FamilyInputs::default()).unwrap_err();
    assert_eq!(e.class, ErrorClass::SchemaViolation);
    assert_eq!(e.location.to_string(), "line 2, column 7");
    let no_office = "county,precinct,votes\nFulton,01A,3\n";
    assert_eq!(
        transform(no_office.as_bytes(), &ctx("c"), &FamilyInputs::default())
            .unwrap_err()
            .class,
        ErrorClass::NotThisFormat
    );
    let html = fixture(
        "clarity_enr/GA_107556_runoff_2021_ALLjson_series/001_20210106T000831Z_v273739/ALL.json",
    );
    assert_eq!(
        transform(&html, &ctx("c"), &FamilyInputs::default())
            .unwrap_err()
            .class,
        ErrorClass::NotThisFormat
    );
    let latin1 =
        b"county,precinct,office,district,party,candidate,votes\nAdams,1,Pres,,X,Garc\xeda,3\n";
    let strict: toml::Table = toml::from_str("encoding = \"utf-8\"").unwrap();
    let e = transform(
        latin1,
        &ctx("c"),
        &FamilyInputs {
            mapping: Some(&strict),
            ..FamilyInputs::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.class, ErrorClass::SchemaViolation);
    let auto = transform(latin1, &ctx("c"), &FamilyInputs::default()).unwrap();
    assert_eq!(&*auto.cells[0].choice.name, "García");
}

#[test]
fn a_file_cut_inside_its_last_row_is_a_truncation() {
    let whole = "county,precinct,office,district,party,candidate,votes\n\
                 Fulton,01A,Governor,,REP,KEMP,17\n\
                 Fulton,01A,Governor,,DEM,ABRAMS,35\n";
    assert_eq!(
        transform(whole.as_bytes(), &ctx("csv:cut"), &FamilyInputs::default())
            .unwrap()
            .cells
            .len(),
        2
    );
    let optional = no_final_newline();
    let lenient = FamilyInputs {
        mapping: Some(&optional),
        ..FamilyInputs::default()
    };
    // Every cut inside the last row: the `3` of `35`, a row short of
    // fields, a row cut inside a quoted name.
    for cut in 1..=("Fulton,01A,Governor,,DEM,ABRAMS,35\n".len() - 1) {
        let bytes = &whole.as_bytes()[..whole.len() - cut];
        let e = transform(bytes, &ctx("csv:cut"), &FamilyInputs::default()).unwrap_err();
        assert_eq!(e.class, ErrorClass::Truncated, "cut {cut}: {e}");
        assert_eq!(e.location.to_string(), "line 3", "cut {cut}");
        assert!(e.message.contains("final_newline"), "{e}");
        assert!(e.is_retryable());
        // Without the newline rule a short last row is still a cut (cut 3
        // leaves `ABRAMS,`: seven fields, the last one empty, so no cell).
        if cut > 3 {
            let e = transform(bytes, &ctx("csv:cut"), &lenient).unwrap_err();
            assert_eq!(e.class, ErrorClass::Truncated, "cut {cut}: {e}");
            assert!(e.message.contains("of the header's 7 fields"), "{e}");
        }
    }
    let quoted = "county,precinct,office,district,party,candidate,votes\n\
                  Fulton,01A,Governor,,DEM,\"ABRAMS, ST";
    assert_eq!(
        transform(quoted.as_bytes(), &ctx("csv:cut"), &lenient)
            .unwrap_err()
            .class,
        ErrorClass::Truncated
    );
    // The real files that end without a newline are refused without the
    // setting, and say which setting.
    let pa = fixture("precinct_csv/openelections-data-pa/20201103__pa__general__county.csv");
    let e = transform(&pa, &ctx("csv:pa"), &FamilyInputs::default()).unwrap_err();
    assert_eq!(e.class, ErrorClass::Truncated);
    assert!(e.message.contains("final_newline = \"optional\""), "{e}");
}

#[test]
fn an_end_of_file_mark_and_lone_carriage_returns_are_line_ends_not_cuts_or_long_lines() {
    let whole = "county,precinct,office,district,party,candidate,votes\n\
                 Fulton,01A,Governor,,REP,KEMP,17\n\
                 Fulton,01A,Governor,,DEM,ABRAMS,35\n";
    // A DOS writer's Ctrl-Z after the last line end.
    let marked = format!("{whole}\x1a");
    let t = transform(marked.as_bytes(), &ctx("csv:eof"), &FamilyInputs::default()).unwrap();
    assert_eq!(t.cells.len(), 2);
    // Ctrl-Z right after a cut value is still a cut.
    let cut = format!("{}\x1a", &whole[..whole.len() - 2]);
    let e = transform(cut.as_bytes(), &ctx("csv:eof"), &FamilyInputs::default()).unwrap_err();
    assert_eq!(e.class, ErrorClass::Truncated, "{e}");
    // Classic Mac line ends: 40,000 rows (about 1.4 MB) on "one line" by
    // `\n`, each a short line by `\r`.
    let mut mac = String::from("county,precinct,office,district,party,candidate,votes\r");
    for i in 0..40_000 {
        mac.push_str(&format!("Fulton,P{i},Governor,,REP,KEMP,{}\r", i % 500));
    }
    assert!(mac.len() > 1 << 20);
    let t = transform(mac.as_bytes(), &ctx("csv:cr"), &FamilyInputs::default()).unwrap();
    assert_eq!(t.cells.len(), 40_000);
}

#[test]
fn counts_outside_any_real_range_are_refused_where_they_are() {
    let header = "county,precinct,office,district,party,candidate,votes\n";
    for (value, says) in [
        ("-5", "a negative count"),
        ("9223372036854775807", "ceiling"),
        ("99999999999999999999", "ceiling"),
        ("1000000001", "ceiling"),
        ("9007199254740993", "ceiling"),
        ("12.5", "not a whole number"),
        ("1e30", "not a whole number"),
        ("0x10", "not a number"),
    ] {
        let text = format!("{header}Fulton,01A,Governor,,DEM,ABRAMS,{value}\n");
        let e =
            transform(text.as_bytes(), &ctx("csv:range"), &FamilyInputs::default()).unwrap_err();
        assert_eq!(e.class, ErrorClass::SchemaViolation, "{value}: {e}");
        assert_eq!(e.location.to_string(), "line 2, column 7", "{value}");
        assert!(e.message.contains(says), "{value}: {e}");
    }
    let ok = format!("{header}Fulton,01A,Governor,,DEM,ABRAMS,\"1,000,000,000\"\n");
    let out = transform(ok.as_bytes(), &ctx("csv:range"), &FamilyInputs::default()).unwrap();
    assert_eq!(out.cells[0].votes, 1_000_000_000);
}

#[test]
fn a_huge_field_is_a_bounded_limit_error_not_a_huge_error() {
    let mut text =
        b"county,precinct,office,district,party,candidate,votes\nFulton,01A,Governor,,DEM,ABRAMS,"
            .to_vec();
    text.extend(std::iter::repeat_n(b'9', 2 * 1024 * 1024));
    text.push(b'\n');
    let e = transform(&text, &ctx("csv:huge"), &FamilyInputs::default()).unwrap_err();
    assert_eq!(e.class, ErrorClass::LimitExceeded, "{e}");
    assert_eq!(e.location.to_string(), "line 2");
    // A bad value just under the line limit is quoted, not copied whole.
    let mut text =
        b"county,precinct,office,district,party,candidate,votes\nFulton,01A,Governor,,DEM,ABRAMS,"
            .to_vec();
    text.extend(std::iter::repeat_n(b'x', 900 * 1024));
    text.push(b'\n');
    let e = transform(&text, &ctx("csv:huge"), &FamilyInputs::default()).unwrap_err();
    assert_eq!(e.class, ErrorClass::SchemaViolation);
    assert!(e.to_string().len() < 1024, "{} bytes", e.to_string().len());
}
