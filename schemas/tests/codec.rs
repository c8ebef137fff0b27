//! The hand-written VoteCell codec agrees byte for byte with apache-avro, and
//! the generic path round-trips every other record.

use std::sync::Arc;

use apache_avro::types::Value;
use votewire_schemas::codec::{self, CodecError};
use votewire_schemas::*;

fn cell(full: bool) -> VoteCell {
    let t = |s: &str| Text::from(s);
    let header = Arc::new(PayloadHeader {
        election_id: t("2021-01-05-GA-runoff"),
        source_feed_id: t("clarity:GA:107556"),
        mode: if full {
            FeedMode::Replay
        } else {
            FeedMode::Live
        },
        source_seq: 1_234_567_890_123,
        source_version: full.then(|| t("274935")),
        as_of: full.then_some(1_610_000_000_000),
        as_of_raw: full.then(|| t("1/14/2021 7:43:35 AM EST")),
        fetched_at: 1_610_600_000_000,
        provenance: Provenance {
            feed_id: t("clarity:GA:107556"),
            fetch_id: t("0191f3a2-fetch"),
            source_uri: t(
                "https://results.enr.clarityelections.com//GA/107556/274935/json/ALL.json",
            ),
            payload_sha256: t("ebf642e525ac2802470b17b0f61117f8392f107f4b1c09818d955318c5d73eef"),
            trace_id: full.then(|| t("4bf92f3577b34da6a3ce929d0e0e4736")),
        },
    });
    VoteCell {
        header,
        contest: Arc::new(ContestRef {
            source_id: t("10000"),
            name: t("US Senate (Perdue)/Senado de los EE.UU. (Perdue)"),
            kind: ContestKind::Candidate,
            vote_for: full.then_some(1),
            primary_party: full.then(|| t("REP")),
        }),
        unit: Arc::new(ReportingUnitRef {
            source_id: t("Appling"),
            name: t("Appling"),
            unit_type: UnitType::County,
            type_raw: full.then(|| t("County")),
            parent_source_id: full.then(|| t("GA")),
            fips: full.then(|| t("13001")),
        }),
        choice: Arc::new(ChoiceRef {
            source_id: t("1"),
            name: t("David A. Perdue (I) (Rep) — ü"),
            kind: ChoiceKind::Candidate,
            party: full.then(|| t("REP")),
            incumbent: full.then_some(true),
        }),
        vote_type: VoteType::Absentee,
        vote_type_raw: t("Absentee by Mail Votes"),
        votes: if full { -1 } else { 5_683 },
        precincts_reporting: full.then_some(17),
        precincts_total: full.then_some(18),
        pct_expected_vote: full.then_some(99.5),
        winner: full.then_some(false),
        raw_ref: full.then(|| t("/Contests/0/V/0/1")),
        links: full.then(|| {
            Arc::new(ResultLinks {
                contest_id: Some(t("ga-2021-senate-perdue-ossoff")),
                unit_id: None,
                parent_unit_id: Some(t("GA")),
                choice_id: Some(t("perdue")),
                priority: -3,
                root_unit_id: Some(t("GA")),
            })
        }),
    }
}

/// An apache-avro Value built field by field from the schema's field list,
/// independently of the hand encoder.
fn avro_value(c: &VoteCell) -> Value {
    let h = &c.header;
    let s = |v: &str| Value::String(v.to_string());
    let os = |v: &Option<Text>| match v {
        Some(v) => Value::Union(1, Box::new(s(v))),
        None => Value::Union(0, Box::new(Value::Null)),
    };
    let oi = |v: Option<i32>| match v {
        Some(v) => Value::Union(1, Box::new(Value::Int(v))),
        None => Value::Union(0, Box::new(Value::Null)),
    };
    let ob = |v: Option<bool>| match v {
        Some(v) => Value::Union(1, Box::new(Value::Boolean(v))),
        None => Value::Union(0, Box::new(Value::Null)),
    };
    let rec = |fields: Vec<(&str, Value)>| {
        Value::Record(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    };
    let en = |i: i32, sym: &str| Value::Enum(i as u32, sym.to_string());
    rec(vec![
        ("cell_key", s(&c.cell_key().to_hex())),
        ("election_id", s(&h.election_id)),
        ("source_feed_id", s(&h.source_feed_id)),
        ("mode", en(h.mode.index(), h.mode.as_str())),
        (
            "contest",
            rec(vec![
                ("source_id", s(&c.contest.source_id)),
                ("name", s(&c.contest.name)),
                ("kind", en(c.contest.kind.index(), c.contest.kind.as_str())),
                ("vote_for", oi(c.contest.vote_for)),
                ("primary_party", os(&c.contest.primary_party)),
            ]),
        ),
        (
            "unit",
            rec(vec![
                ("source_id", s(&c.unit.source_id)),
                ("name", s(&c.unit.name)),
                (
                    "type",
                    en(c.unit.unit_type.index(), c.unit.unit_type.as_str()),
                ),
                ("type_raw", os(&c.unit.type_raw)),
                ("parent_source_id", os(&c.unit.parent_source_id)),
                ("fips", os(&c.unit.fips)),
            ]),
        ),
        (
            "choice",
            rec(vec![
                ("source_id", s(&c.choice.source_id)),
                ("name", s(&c.choice.name)),
                ("kind", en(c.choice.kind.index(), c.choice.kind.as_str())),
                ("party", os(&c.choice.party)),
                ("incumbent", ob(c.choice.incumbent)),
            ]),
        ),
        ("vote_type", en(c.vote_type.index(), c.vote_type.as_str())),
        ("vote_type_raw", s(&c.vote_type_raw)),
        ("votes", Value::Long(c.votes)),
        ("precincts_reporting", oi(c.precincts_reporting)),
        ("precincts_total", oi(c.precincts_total)),
        (
            "pct_expected_vote",
            match c.pct_expected_vote {
                Some(v) => Value::Union(1, Box::new(Value::Double(v))),
                None => Value::Union(0, Box::new(Value::Null)),
            },
        ),
        ("winner", ob(c.winner)),
        ("source_seq", Value::Long(h.source_seq)),
        ("source_version", os(&h.source_version)),
        (
            "as_of",
            match h.as_of {
                Some(v) => Value::Union(1, Box::new(Value::TimestampMillis(v))),
                None => Value::Union(0, Box::new(Value::Null)),
            },
        ),
        ("as_of_raw", os(&h.as_of_raw)),
        ("fetched_at", Value::TimestampMillis(h.fetched_at)),
        (
            "provenance",
            rec(vec![
                ("feed_id", s(&h.provenance.feed_id)),
                ("fetch_id", s(&h.provenance.fetch_id)),
                ("source_uri", s(&h.provenance.source_uri)),
                ("payload_sha256", s(&h.provenance.payload_sha256)),
                ("trace_id", os(&h.provenance.trace_id)),
            ]),
        ),
        ("raw_ref", os(&c.raw_ref)),
        (
            "links",
            match &c.links {
                None => Value::Union(0, Box::new(Value::Null)),
                Some(l) => Value::Union(
                    1,
                    Box::new(rec(vec![
                        ("contest_id", os(&l.contest_id)),
                        ("unit_id", os(&l.unit_id)),
                        ("parent_unit_id", os(&l.parent_unit_id)),
                        ("choice_id", os(&l.choice_id)),
                        ("priority", Value::Int(l.priority)),
                        ("root_unit_id", os(&l.root_unit_id)),
                    ])),
                ),
            },
        ),
    ])
}

#[test]
fn the_fast_vote_cell_encoder_matches_apache_avro_byte_for_byte() {
    let s = &schemas().vote_cell;
    for full in [false, true] {
        let c = cell(full);
        let mut fast = Vec::new();
        codec::encode_vote_cell(&c, s.id, &mut fast);
        let value = avro_value(&c);
        assert!(
            value.validate(&s.schema),
            "the reference value fits the schema"
        );
        let reference = apache_avro::to_avro_datum(&s.schema, value).unwrap();
        assert_eq!(&fast[..5], &[0, 0, 0, 0, s.id as u8]);
        assert_eq!(&fast[5..], reference.as_slice(), "full={full}");
    }
}

#[test]
fn apache_avro_reads_what_the_fast_encoder_writes_and_the_fast_decoder_reads_it_back() {
    let s = &schemas().vote_cell;
    for full in [false, true] {
        let c = cell(full);
        let mut bytes = Vec::new();
        codec::encode_vote_cell(&c, s.id, &mut bytes);
        let value = codec::decode_value(s, &bytes).unwrap();
        assert_eq!(value, avro_value(&c).resolve(&s.schema).unwrap());
        assert_eq!(codec::decode_vote_cell(&bytes, s.id).unwrap(), c);
    }
}

#[test]
fn damaged_vote_cell_frames_are_rejected_not_misread() {
    let s = &schemas().vote_cell;
    let mut bytes = Vec::new();
    codec::encode_vote_cell(&cell(true), s.id, &mut bytes);
    for cut in [0, 3, 5, 20, bytes.len() - 1] {
        assert!(
            codec::decode_vote_cell(&bytes[..cut], s.id).is_err(),
            "cut at {cut}"
        );
    }
    let mut wrong_magic = bytes.clone();
    wrong_magic[0] = 1;
    assert!(matches!(
        codec::decode_vote_cell(&wrong_magic, s.id),
        Err(CodecError::Framing(_))
    ));
    assert!(matches!(
        codec::decode_vote_cell(&bytes, s.id + 1),
        Err(CodecError::UnexpectedSchemaId { .. })
    ));
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(codec::decode_vote_cell(&extra, s.id).is_err());
    // Change one digit of the votes-bearing identity: the key no longer matches.
    let mut tampered = Vec::new();
    let mut other = cell(true);
    Arc::make_mut(&mut other.unit).source_id = Text::from("Bacon");
    codec::encode_vote_cell(&other, s.id, &mut tampered);
    let key_len = 1 + 32; // varint length + 32 hex digits
    tampered[5..5 + key_len].copy_from_slice(&bytes[5..5 + key_len]);
    assert!(codec::decode_vote_cell(&tampered, s.id).is_err());
}

#[test]
fn cell_keys_are_stable_and_separate_every_identity_part() {
    let c = cell(false);
    let again = cell(false);
    assert_eq!(c.cell_key(), again.cell_key());
    let k = |f: &str, ct: &str, u: &str, ch: &str| {
        cell_key(f, ct, u, ch, VoteType::Total, "total").to_hex()
    };
    assert_ne!(k("a", "bc", "d", "e"), k("ab", "c", "d", "e"));
    assert_ne!(k("a", "b", "cd", "e"), k("a", "bc", "d", "e"));
    assert_ne!(
        cell_key("f", "c", "u", "x", VoteType::Early, "advance_in_person_1"),
        cell_key("f", "c", "u", "x", VoteType::Early, "advance_in_person_2"),
    );
    assert_eq!(k("a", "b", "c", "d").len(), 32);
    // Test data is another cell than the live one of the same identity
    // (two records on the compacted topic); replayed data is the same.
    let live = c.cell_key();
    let mut test = cell(false);
    test.header = Arc::new(PayloadHeader {
        mode: FeedMode::Test,
        ..(*test.header).clone()
    });
    assert_ne!(test.cell_key(), live);
    assert_eq!(test.cell_key(), live.in_mode(FeedMode::Test));
    assert_eq!(live.in_mode(FeedMode::Replay), live);
    assert_eq!(live.in_mode(FeedMode::Live), live);
}

#[test]
fn every_other_record_round_trips_through_apache_avro() {
    let set = schemas();
    let result = ContestResult {
        election_id: "2021-01-05-GA-runoff".into(),
        contest_id: "clarity:GA:107556/10000".into(),
        contest_name: "US Senate (Perdue)".into(),
        unit_id: "state".into(),
        unit_name: "Georgia".into(),
        unit_type: UnitType::State,
        parent_unit_id: None,
        mode: FeedMode::Replay,
        official_feed_id: "clarity:GA:107556".into(),
        choices: vec![ChoiceResult {
            choice_id: "0".into(),
            choice_name: "David A. Perdue".into(),
            party: Some("REP".into()),
            votes: 2_214_979,
            percent: 49.39,
            reported: Some(2_214_979),
            sum_of_children: Some(2_214_978),
            winner: None,
            by_source: vec![SourceValue {
                feed_id: "ap-interactive:GA".into(),
                votes: 2_214_979,
                source_seq: 7,
            }],
        }],
        total_votes: 4_484_545,
        leader_choice_id: Some("1".into()),
        margin_votes: Some(54_944),
        margin_pct: Some(1.22),
        aggregates_disagree: true,
        precincts_reporting: Some(2656),
        precincts_total: Some(2656),
        pct_expected_vote: None,
        last_updated: 1_610_600_000_000,
        contributors: vec![Contribution {
            feed_id: "clarity:GA:107556".into(),
            source_seq: 135,
            source_version: Some("275235".into()),
        }],
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
    };
    let bytes = codec::encode(&set.contest_result, &result).unwrap();
    assert_eq!(bytes[4] as u32, set.contest_result.id);
    assert_eq!(
        codec::decode::<ContestResult>(&set.contest_result, &bytes).unwrap(),
        result
    );

    let manifest = SnapshotManifest {
        feed_id: "clarity:GA:107556".into(),
        election_id: "e".into(),
        mode: FeedMode::Live,
        fetch_id: "f".into(),
        status: SnapshotStatus::Rejected,
        source_seq: None,
        source_uri: "u".into(),
        source_version: Some("273739".into()),
        payload_sha256: "00".into(),
        payload_bytes: 2616,
        archive_ref: Some("file:///a/00".into()),
        family: "clarity-json".into(),
        cells_total: 0,
        cells_changed: 0,
        error_class: Some("not_this_format".into()),
        error_location: Some("byte 0".into()),
        error_message: Some("an HTML page".into()),
        as_of: None,
        as_of_raw: None,
        fetched_at: 1,
        trace_id: None,
    };
    let bytes = codec::encode(&set.snapshot_manifest, &manifest).unwrap();
    assert_eq!(
        codec::decode::<SnapshotManifest>(&set.snapshot_manifest, &bytes).unwrap(),
        manifest
    );

    let status = FeedStatus {
        feed_id: "x".into(),
        from_state: Some(FeedHealth::Healthy),
        to_state: FeedHealth::Quarantined,
        reason: "5 consecutive rejected payloads".into(),
        at: 2,
        consecutive_failures: 5,
        last_change_at: Some(1),
        fetch_id: None,
        actor: Some("ingestor-1".into()),
        trace_id: None,
    };
    let bytes = codec::encode(&set.feed_status, &status).unwrap();
    assert_eq!(
        codec::decode::<FeedStatus>(&set.feed_status, &bytes).unwrap(),
        status
    );

    let dead = DeadLetter {
        feed_id: "x".into(),
        election_id: "e".into(),
        fetch_id: "f".into(),
        family: "ap-interactive".into(),
        source_uri: "u".into(),
        payload_sha256: "ab".into(),
        payload_bytes: 77116,
        archive_ref: None,
        error_class: ErrorClass::Truncated,
        error_location: Some("byte 77116".into()),
        error_message: "EOF while parsing".into(),
        retryable: true,
        fetched_at: 3,
        trace_id: Some("t".into()),
    };
    let bytes = codec::encode(&set.dead_letter, &dead).unwrap();
    assert_eq!(
        codec::decode::<DeadLetter>(&set.dead_letter, &bytes).unwrap(),
        dead
    );
}

#[test]
fn a_stream_decoder_shares_the_parts_cells_repeat_and_returns_their_keys() {
    let s = &schemas().vote_cell;
    let first = cell(true);
    // A second cell of the same payload: another choice, same header,
    // contest and unit.
    let mut second = first.clone();
    second.choice = std::sync::Arc::new(votewire_schemas::ChoiceRef {
        source_id: "other-choice".into(),
        ..(*first.choice).clone()
    });
    second.votes = 7;
    let mut decoder = codec::VoteCellDecoder::new(s.id);
    let mut decoded = Vec::new();
    for c in [&first, &second, &first] {
        let mut bytes = Vec::new();
        codec::encode_vote_cell(c, s.id, &mut bytes);
        let (key, out) = decoder.decode(&bytes).unwrap();
        assert_eq!(key, c.cell_key());
        assert_eq!(&out, c, "decoding is exact");
        decoded.push(out);
    }
    use std::sync::Arc;
    assert!(Arc::ptr_eq(&decoded[0].header, &decoded[1].header));
    assert!(Arc::ptr_eq(&decoded[0].contest, &decoded[1].contest));
    assert!(Arc::ptr_eq(&decoded[0].unit, &decoded[1].unit));
    assert!(!Arc::ptr_eq(&decoded[0].choice, &decoded[1].choice));
    assert!(Arc::ptr_eq(&decoded[0].choice, &decoded[2].choice));
    // A cell of another payload gets its own header.
    let mut later = first.clone();
    let mut header = (*first.header).clone();
    header.source_seq += 1;
    later.header = Arc::new(header);
    let mut bytes = Vec::new();
    codec::encode_vote_cell(&later, s.id, &mut bytes);
    let (_, out) = decoder.decode(&bytes).unwrap();
    assert_eq!(out.header.source_seq, first.header.source_seq + 1);
    assert!(!Arc::ptr_eq(&out.header, &decoded[0].header));
    assert!(Arc::ptr_eq(&out.contest, &decoded[0].contest));
}

#[test]
fn records_of_the_layout_without_root_unit_id_still_decode() {
    let s = &schemas().vote_cell;
    assert_ne!(s.id, 6, "the current layout has its own id");
    let mut cell = cell(true);
    let mut links = (**cell.links.as_ref().unwrap()).clone();
    links.root_unit_id = None;
    cell.links = Some(std::sync::Arc::new(links));
    let mut current = Vec::new();
    codec::encode_vote_cell(&cell, s.id, &mut current);
    // The id-6 layout is the current one minus the trailing root_unit_id
    // union (its null branch is one zero byte), under id 6.
    assert_eq!(current.last(), Some(&0));
    let mut legacy = current[..current.len() - 1].to_vec();
    legacy[1..5].copy_from_slice(&6u32.to_be_bytes());
    assert_eq!(codec::decode_vote_cell(&legacy, s.id).unwrap(), cell);
    let mut short = legacy.clone();
    short[1..5].copy_from_slice(&s.id.to_be_bytes());
    assert!(codec::decode_vote_cell(&short, s.id).is_err());
}

#[test]
fn records_of_the_earlier_layout_without_links_still_decode() {
    let s = &schemas().vote_cell;
    assert_ne!(s.id, 1, "the current layout has its own id");
    let mut cell = cell(true);
    cell.links = None;
    let mut current = Vec::new();
    codec::encode_vote_cell(&cell, s.id, &mut current);
    // The id-1 layout is the current one minus the trailing `links` union
    // (its null branch is one zero byte), under id 1.
    assert_eq!(current.last(), Some(&0));
    let mut legacy = current[..current.len() - 1].to_vec();
    legacy[1..5].copy_from_slice(&1u32.to_be_bytes());
    assert_eq!(codec::decode_vote_cell(&legacy, s.id).unwrap(), cell);
    // And that layout under the current id is a truncated record.
    let mut short = legacy.clone();
    short[1..5].copy_from_slice(&s.id.to_be_bytes());
    assert!(codec::decode_vote_cell(&short, s.id).is_err());
}

#[test]
fn a_test_cell_written_under_its_live_key_still_reads_and_a_wrong_key_does_not() {
    let s = &schemas().vote_cell;
    let mut test = cell(false);
    test.header = Arc::new(PayloadHeader {
        mode: FeedMode::Test,
        ..(*test.header).clone()
    });
    let live_key = cell(false).cell_key();
    let mut legacy = Vec::new();
    codec::encode_vote_cell_keyed(&test, &live_key.to_hex(), s.id, &mut legacy);
    let mut decoder = codec::VoteCellDecoder::new(s.id);
    let (key, read) = decoder.decode(&legacy).expect("a legacy test cell reads");
    assert_eq!(
        (key, &read),
        (test.cell_key(), &test),
        "under its identity's key, as a current record of it"
    );
    let mut current = Vec::new();
    codec::encode_vote_cell(&test, s.id, &mut current);
    let (key, _) = decoder.decode(&current).unwrap();
    assert_eq!(key, test.cell_key());
    // A live cell under the test key is not its identity.
    let mut wrong = Vec::new();
    codec::encode_vote_cell_keyed(&cell(false), &test.cell_key().to_hex(), s.id, &mut wrong);
    assert!(decoder.decode(&wrong).is_err());
}
