//! Current results as a NIST SP 1500-100 v2 `ElectionReport`, in its XML
//! or JSON encoding: what `votewire export` and `GET /v1/export/{election}`
//! write.
//!
//! The input is the current cells of one election (the compacted votes
//! topic, newest `source_seq` per cell), so the report keeps everything a
//! source said: contest kinds, vote limits, primary parties, unit types,
//! choice parties and write-ins, and each vote type as its own
//! `VoteCounts`. A NIST source exported and read back with the
//! `nist-cdf-xml` / `nist-cdf-json` transformers gives the same cells
//! (tested on the Cambridge 2022 primary).
//!
//! Mapping:
//! - `GpUnit` (`ReportingUnit`) per unit, `Type` from the source's raw type
//!   when it is a NIST value, else from the normalized type. A parent that
//!   the cells name but never report is typed one level up, as the
//!   aggregator types it (`county` above precincts, `state` above
//!   counties) and composes its children. A synthetic `vw-election-scope`
//!   unit is the election's scope and composes the roots.
//! - `Contest` per contest (`CandidateContest`, `BallotMeasureContest`,
//!   `PartyContest`, `RetentionContest`), `VotesAllowed` 1 when the source
//!   gave none; pseudo contests (registered voters, ballots cast) are left
//!   out: they are not contests.
//! - `ContestSelection` per choice: a `CandidateSelection` naming a
//!   `Candidate` whose `BallotName` is the choice name (with `IsWriteIn`
//!   for write-ins), or a `BallotMeasureSelection` with the choice name.
//! - Several feeds in one election: ids are prefixed with the feed, and
//!   each feed's contests are exported as it reported them (the merged
//!   official view is the results topic's).
//! - `Status` is `unofficial-complete` when precinct counts are known and
//!   every unit reports all of its precincts, else `unofficial-partial`.
//! - Ids are made valid `xs:ID`s (letters, digits, `.-_`, not starting with
//!   a digit); every id is unique across the document.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use votewire_schemas::{ChoiceKind, ContestKind, UnitType, VoteCell};

/// The two encodings of the standard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Xml,
    Json,
}

/// An exported report and what is in it.
#[derive(Debug, Clone)]
pub struct ExportedReport {
    pub bytes: Vec<u8>,
    /// `unofficial-partial` or `unofficial-complete`.
    pub status: &'static str,
    pub contests: usize,
    pub units: usize,
    pub vote_counts: usize,
}

const NAMESPACE: &str = "http://itl.nist.gov/ns/voting/1500-100/v2";
const SCOPE_ID: &str = "vw-election-scope";

const COUNT_TYPES: &[&str] = &[
    "absentee",
    "absentee-fwab",
    "absentee-in-person",
    "absentee-mail",
    "early",
    "election-day",
    "provisional",
    "seats",
    "total",
    "uocava",
    "write-in",
];

const UNIT_TYPES: &[&str] = &[
    "ballot-batch",
    "ballot-style-area",
    "borough",
    "city",
    "city-council",
    "combined-precinct",
    "congressional",
    "country",
    "county",
    "county-council",
    "drop-box",
    "judicial",
    "municipality",
    "polling-place",
    "precinct",
    "school",
    "special",
    "split-precinct",
    "state",
    "state-house",
    "state-senate",
    "town",
    "township",
    "utility",
    "village",
    "vote-center",
    "ward",
    "water",
];

/// A NIST `Type` (and `OtherType`) for a raw label among `allowed`.
fn nist_type(raw: &str, allowed: &[&str]) -> (String, Option<String>) {
    if allowed.contains(&raw) {
        (raw.to_string(), None)
    } else {
        ("other".to_string(), Some(raw.to_string()))
    }
}

fn unit_type_name(t: UnitType) -> &'static str {
    match t {
        UnitType::State => "state",
        UnitType::County => "county",
        UnitType::Precinct => "precinct",
        UnitType::SplitPrecinct => "split-precinct",
        UnitType::CombinedPrecinct => "combined-precinct",
        UnitType::Municipality => "municipality",
        UnitType::District => "special",
        UnitType::PollingPlace => "polling-place",
        UnitType::VoteCenter => "vote-center",
        UnitType::Virtual | UnitType::Other => "other",
    }
}

/// Hands out document-unique `xs:ID`s.
#[derive(Default)]
struct Ids {
    given: HashMap<(u8, String), String>,
    taken: BTreeSet<String>,
}

impl Ids {
    /// The id for `raw` in namespace `space` (units, contests, …).
    fn id(&mut self, space: u8, raw: &str) -> String {
        self.id_preferring(space, raw, raw)
    }

    /// The id for `key` in `space`, made from `preferred` (a source's own
    /// id, kept when it is free and valid).
    fn id_preferring(&mut self, space: u8, key: &str, preferred: &str) -> String {
        if let Some(id) = self.given.get(&(space, key.to_string())) {
            return id.clone();
        }
        let raw = preferred;
        let mut id: String = raw
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if id.is_empty() || !id.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            id.insert(0, '_');
        }
        let base = id.clone();
        let mut n = 2;
        while self.taken.contains(&id) {
            id = format!("{base}.{n}");
            n += 1;
        }
        self.taken.insert(id.clone());
        self.given.insert((space, key.to_string()), id.clone());
        id
    }
}

const UNIT: u8 = 0;
const CONTEST: u8 = 1;
const SELECTION: u8 = 2;
const CANDIDATE: u8 = 3;
const PARTY: u8 = 4;

struct Unit {
    id: String,
    name: String,
    type_: String,
    other_type: Option<String>,
    composing: BTreeSet<String>,
    reporting: Option<i32>,
    total: Option<i32>,
}

struct Count {
    unit: String,
    type_: String,
    other_type: Option<String>,
    count: i64,
}

struct Selection {
    id: String,
    name: String,
    write_in: bool,
    candidate: Option<String>,
    party: Option<String>,
    counts: Vec<Count>,
}

struct Contest {
    id: String,
    name: String,
    kind: ContestKind,
    votes_allowed: i32,
    primary_party: Option<String>,
    district: String,
    selections: Vec<Selection>,
}

struct Candidate {
    id: String,
    name: String,
    party: Option<String>,
}

struct Model {
    units: Vec<Unit>,
    parties: Vec<(String, String)>,
    candidates: Vec<Candidate>,
    contests: Vec<Contest>,
    status: &'static str,
    format: &'static str,
    election_type: &'static str,
    is_test: bool,
    vote_counts: usize,
}

/// Builds the report model from the cells of one election.
fn model(cells: &[VoteCell]) -> Model {
    let feeds: BTreeSet<&str> = cells
        .iter()
        .map(|c| &*c.header.provenance.feed_id)
        .collect();
    let prefix = |feed: &str, id: &str| -> String {
        if feeds.len() > 1 {
            format!("{feed}.{id}")
        } else {
            id.to_string()
        }
    };
    let mut ids = Ids::default();
    ids.taken.insert(SCOPE_ID.to_string());

    // Units the cells report, then parents they only name.
    let mut units: BTreeMap<String, Unit> = BTreeMap::new();
    let mut parent_of: BTreeMap<String, String> = BTreeMap::new();
    let mut child_types: BTreeMap<String, Vec<UnitType>> = BTreeMap::new();
    for c in cells {
        let feed = &*c.header.provenance.feed_id;
        let key = prefix(feed, &c.unit.source_id);
        let u = units.entry(key.clone()).or_insert_with(|| {
            let raw = c.unit.type_raw.as_deref().unwrap_or("");
            let (type_, other_type) = if UNIT_TYPES.contains(&raw) || raw == "other" {
                (raw.to_string(), None)
            } else {
                (unit_type_name(c.unit.unit_type).to_string(), None)
            };
            Unit {
                id: ids.id(UNIT, &key),
                name: c.unit.name.to_string(),
                type_,
                other_type,
                composing: BTreeSet::new(),
                reporting: None,
                total: None,
            }
        });
        if c.precincts_total.is_some() {
            u.reporting = c.precincts_reporting;
            u.total = c.precincts_total;
        }
        if let Some(p) = &c.unit.parent_source_id {
            let pk = prefix(feed, p);
            parent_of.insert(key.clone(), pk.clone());
            child_types.entry(pk).or_default().push(c.unit.unit_type);
        }
    }
    // Type "other" for a unit the source typed "other" needs its OtherType:
    // the cells keep only the raw label, which is "other" itself.
    for u in units.values_mut() {
        if u.type_ == "other" {
            u.other_type = Some("other".into());
        }
    }
    for (parent, kinds) in &child_types {
        if units.contains_key(parent) {
            continue;
        }
        let t = if kinds.contains(&UnitType::County) {
            "state"
        } else if kinds.iter().any(|t| {
            matches!(
                t,
                UnitType::Precinct | UnitType::SplitPrecinct | UnitType::CombinedPrecinct
            )
        }) {
            "county"
        } else {
            "other"
        };
        let id = ids.id(UNIT, parent);
        let name = parent
            .rsplit_once('.')
            .filter(|_| feeds.len() > 1)
            .map_or(parent.as_str(), |(_, n)| n)
            .to_string();
        units.insert(
            parent.clone(),
            Unit {
                id,
                name,
                type_: t.to_string(),
                other_type: (t == "other").then(|| "parent".to_string()),
                composing: BTreeSet::new(),
                reporting: None,
                total: None,
            },
        );
    }
    for (child, parent) in &parent_of {
        let child_id = units[child].id.clone();
        if let Some(p) = units.get_mut(parent) {
            p.composing.insert(child_id);
        }
    }
    let root_of = |key: &str| -> String {
        let mut k = key.to_string();
        let mut hops = 0;
        while let Some(p) = parent_of.get(&k) {
            k = p.clone();
            hops += 1;
            if hops > 16 {
                break; // a cycle in the source's parents: stop climbing
            }
        }
        k
    };

    // Parties, contests, selections, candidates.
    let mut parties: BTreeMap<String, String> = BTreeMap::new();
    let mut party_id = |label: &str, ids: &mut Ids| -> String {
        parties
            .entry(label.to_string())
            .or_insert_with(|| ids.id(PARTY, &format!("party-{label}")))
            .clone()
    };
    let mut contests: BTreeMap<String, Contest> = BTreeMap::new();
    let mut contest_roots: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut selection_index: HashMap<(String, String), usize> = HashMap::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut vote_counts = 0;
    let mut is_test = false;
    let mut any_primary = false;
    for c in cells {
        if c.contest.kind == ContestKind::Pseudo {
            continue;
        }
        is_test |= c.header.mode == votewire_schemas::FeedMode::Test;
        let feed = &*c.header.provenance.feed_id;
        let ckey = prefix(feed, &c.contest.source_id);
        let primary = c
            .contest
            .primary_party
            .as_deref()
            .map(|p| party_id(p, &mut ids));
        any_primary |= primary.is_some();
        let contest = contests.entry(ckey.clone()).or_insert_with(|| Contest {
            id: ids.id(CONTEST, &ckey),
            name: c.contest.name.to_string(),
            kind: c.contest.kind,
            votes_allowed: c.contest.vote_for.unwrap_or(1),
            primary_party: primary,
            district: String::new(),
            selections: Vec::new(),
        });
        let ukey = prefix(feed, &c.unit.source_id);
        contest_roots
            .entry(ckey.clone())
            .or_default()
            .insert(root_of(&ukey));
        let skey = (ckey.clone(), c.choice.source_id.to_string());
        let i = match selection_index.get(&skey) {
            Some(i) => *i,
            None => {
                let sid = ids.id_preferring(
                    SELECTION,
                    &format!("{ckey}/{}", c.choice.source_id),
                    &prefix(feed, &c.choice.source_id),
                );
                let party = c.choice.party.as_deref().map(|p| party_id(p, &mut ids));
                let candidate = matches!(contest.kind, ContestKind::Candidate | ContestKind::Other)
                    .then(|| {
                        let cid = ids.id(CANDIDATE, &format!("{ckey}/{}", c.choice.source_id));
                        candidates.push(Candidate {
                            id: cid.clone(),
                            name: c.choice.name.to_string(),
                            party: party.clone(),
                        });
                        cid
                    });
                contest.selections.push(Selection {
                    id: sid,
                    name: c.choice.name.to_string(),
                    write_in: c.choice.kind == ChoiceKind::WriteIn,
                    candidate,
                    party,
                    counts: Vec::new(),
                });
                selection_index.insert(skey, contest.selections.len() - 1);
                contest.selections.len() - 1
            }
        };
        let (type_, other_type) = nist_type(&c.vote_type_raw, COUNT_TYPES);
        contest.selections[i].counts.push(Count {
            unit: units[&ukey].id.clone(),
            type_,
            other_type,
            count: c.votes,
        });
        vote_counts += 1;
    }
    for (key, contest) in contests.iter_mut() {
        let roots = &contest_roots[key];
        contest.district = match roots.iter().next() {
            Some(r) if roots.len() == 1 => units[r].id.clone(),
            _ => SCOPE_ID.to_string(),
        };
        for s in &mut contest.selections {
            s.counts
                .sort_by(|a, b| (&a.unit, &a.type_).cmp(&(&b.unit, &b.type_)));
        }
    }
    let roots: BTreeSet<String> = units
        .keys()
        .filter(|k| !parent_of.contains_key(*k))
        .map(|k| units[k].id.clone())
        .collect();
    let mut all_units: Vec<Unit> = units.into_values().collect();
    all_units.push(Unit {
        id: SCOPE_ID.to_string(),
        name: "election scope".into(),
        type_: "other".into(),
        other_type: Some("election-scope".into()),
        composing: roots,
        reporting: None,
        total: None,
    });
    let known: Vec<&Unit> = all_units.iter().filter(|u| u.total.is_some()).collect();
    let complete = !known.is_empty() && known.iter().all(|u| u.reporting == u.total);
    let precinct_level = all_units.iter().any(|u| {
        matches!(
            u.type_.as_str(),
            "precinct" | "split-precinct" | "combined-precinct"
        )
    });
    Model {
        units: all_units,
        parties: parties.into_iter().map(|(label, id)| (id, label)).collect(),
        candidates,
        contests: contests.into_values().collect(),
        status: if complete {
            "unofficial-complete"
        } else {
            "unofficial-partial"
        },
        format: if precinct_level {
            "precinct-level"
        } else {
            "summary-contest"
        },
        election_type: if any_primary { "primary" } else { "general" },
        is_test,
        vote_counts,
    }
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {} // not XML 1.0
            c => out.push(c),
        }
    }
    out
}

/// `YYYY-MM-DD` from the start of an election id like
/// `2021-01-05-GA-runoff`, else the report date's day.
fn election_date(election_id: &str, generated: &str) -> String {
    let d = election_id.get(..10).unwrap_or("");
    let ok = d.len() == 10
        && d.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if ok {
        d.to_string()
    } else {
        generated.get(..10).unwrap_or("1970-01-01").to_string()
    }
}

fn intl_xml(out: &mut String, element: &str, text: &str, indent: &str) {
    let _ = writeln!(
        out,
        "{indent}<{element}><Text Language=\"en\">{}</Text></{element}>",
        xml_escape(text)
    );
}

fn to_xml(m: &Model, election_id: &str, generated: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    let _ = writeln!(
        o,
        "<ElectionReport xmlns=\"{NAMESPACE}\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">"
    );
    // Election: Candidate*, Contest*, ElectionScopeId, Name, StartDate,
    // EndDate, Type (the schema's order).
    let _ = writeln!(o, "  <Election>");
    for c in &m.candidates {
        let _ = writeln!(o, "    <Candidate ObjectId=\"{}\">", c.id);
        intl_xml(&mut o, "BallotName", &c.name, "      ");
        if let Some(p) = &c.party {
            let _ = writeln!(o, "      <PartyId>{p}</PartyId>");
        }
        let _ = writeln!(o, "    </Candidate>");
    }
    for c in &m.contests {
        let xsi = match c.kind {
            ContestKind::BallotMeasure => "BallotMeasureContest",
            ContestKind::Party => "PartyContest",
            ContestKind::Retention => "RetentionContest",
            _ => "CandidateContest",
        };
        let _ = writeln!(o, "    <Contest xsi:type=\"{xsi}\" ObjectId=\"{}\">", c.id);
        for s in &c.selections {
            let sel_xsi = match c.kind {
                ContestKind::BallotMeasure | ContestKind::Retention => "BallotMeasureSelection",
                ContestKind::Party if s.party.is_some() => "PartySelection",
                ContestKind::Party => "BallotMeasureSelection",
                _ => "CandidateSelection",
            };
            let _ = writeln!(
                o,
                "      <ContestSelection xsi:type=\"{sel_xsi}\" ObjectId=\"{}\">",
                s.id
            );
            // Counts: GpUnitId, Type, OtherType, then Count.
            for v in &s.counts {
                let _ = write!(
                    o,
                    "        <VoteCounts><GpUnitId>{}</GpUnitId><Type>{}</Type>",
                    v.unit, v.type_
                );
                if let Some(t) = &v.other_type {
                    let _ = write!(o, "<OtherType>{}</OtherType>", xml_escape(t));
                }
                let _ = writeln!(o, "<Count>{}</Count></VoteCounts>", v.count);
            }
            match sel_xsi {
                "CandidateSelection" => {
                    if let Some(cid) = &s.candidate {
                        let _ = writeln!(o, "        <CandidateIds>{cid}</CandidateIds>");
                    }
                    if s.write_in {
                        let _ = writeln!(o, "        <IsWriteIn>true</IsWriteIn>");
                    }
                }
                "PartySelection" => {
                    let _ = writeln!(
                        o,
                        "        <PartyIds>{}</PartyIds>",
                        s.party.as_deref().unwrap_or_default()
                    );
                }
                _ => intl_xml(&mut o, "Selection", &s.name, "        "),
            }
            let _ = writeln!(o, "      </ContestSelection>");
        }
        // Contest: ElectionDistrictId, Name; then the subtype's fields.
        let _ = writeln!(
            o,
            "      <ElectionDistrictId>{}</ElectionDistrictId>",
            c.district
        );
        let _ = writeln!(o, "      <Name>{}</Name>", xml_escape(&c.name));
        if xsi == "CandidateContest" {
            if let Some(p) = &c.primary_party {
                let _ = writeln!(o, "      <PrimaryPartyIds>{p}</PrimaryPartyIds>");
            }
            let _ = writeln!(o, "      <VotesAllowed>{}</VotesAllowed>", c.votes_allowed);
        }
        if xsi == "RetentionContest" {
            // A retention contest names its candidate; the cells do not,
            // so the first selection's candidate stands in.
            let _ = writeln!(
                o,
                "      <CandidateId>{}</CandidateId>",
                m.candidates.first().map_or(SCOPE_ID, |c| c.id.as_str())
            );
        }
        let _ = writeln!(o, "    </Contest>");
    }
    let _ = writeln!(o, "    <ElectionScopeId>{SCOPE_ID}</ElectionScopeId>");
    intl_xml(&mut o, "Name", election_id, "    ");
    let date = election_date(election_id, generated);
    let _ = writeln!(o, "    <StartDate>{date}</StartDate>");
    let _ = writeln!(o, "    <EndDate>{date}</EndDate>");
    let _ = writeln!(o, "    <Type>{}</Type>", m.election_type);
    let _ = writeln!(o, "  </Election>");
    let _ = writeln!(o, "  <Format>{}</Format>", m.format);
    let _ = writeln!(o, "  <GeneratedDate>{generated}</GeneratedDate>");
    for u in &m.units {
        let _ = writeln!(
            o,
            "  <GpUnit xsi:type=\"ReportingUnit\" ObjectId=\"{}\">",
            u.id
        );
        if !u.composing.is_empty() {
            let ids: Vec<&str> = u.composing.iter().map(String::as_str).collect();
            let _ = writeln!(
                o,
                "    <ComposingGpUnitIds>{}</ComposingGpUnitIds>",
                ids.join(" ")
            );
        }
        intl_xml(&mut o, "Name", &u.name, "    ");
        if let (Some(r), Some(t)) = (u.reporting, u.total) {
            let _ = writeln!(o, "    <SubUnitsReported>{r}</SubUnitsReported>");
            let _ = writeln!(o, "    <TotalSubUnits>{t}</TotalSubUnits>");
        }
        let _ = writeln!(o, "    <Type>{}</Type>", u.type_);
        if let Some(t) = &u.other_type {
            let _ = writeln!(o, "    <OtherType>{}</OtherType>", xml_escape(t));
        }
        let _ = writeln!(o, "  </GpUnit>");
    }
    let _ = writeln!(o, "  <Issuer>votewire</Issuer>");
    let _ = writeln!(o, "  <IssuerAbbreviation>votewire</IssuerAbbreviation>");
    if m.is_test {
        let _ = writeln!(o, "  <IsTest>true</IsTest>");
    }
    for (id, label) in &m.parties {
        let _ = writeln!(o, "  <Party ObjectId=\"{id}\">");
        intl_xml(&mut o, "Name", label, "    ");
        let _ = writeln!(o, "  </Party>");
    }
    let _ = writeln!(o, "  <SequenceStart>1</SequenceStart>");
    let _ = writeln!(o, "  <SequenceEnd>1</SequenceEnd>");
    let _ = writeln!(o, "  <Status>{}</Status>", m.status);
    let _ = writeln!(
        o,
        "  <VendorApplicationId>votewire {}</VendorApplicationId>",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(o, "</ElectionReport>");
    o
}

fn intl_json(text: &str) -> serde_json::Value {
    serde_json::json!({
        "@type": "ElectionResults.InternationalizedText",
        "Text": [{"@type": "ElectionResults.LanguageString", "Content": text, "Language": "en"}],
    })
}

fn to_json(m: &Model, election_id: &str, generated: &str) -> serde_json::Value {
    use serde_json::{Map, Value, json};
    let units: Vec<Value> = m
        .units
        .iter()
        .map(|u| {
            let mut o = Map::new();
            o.insert("@type".into(), json!("ElectionResults.ReportingUnit"));
            o.insert("@id".into(), json!(u.id));
            if !u.composing.is_empty() {
                o.insert("ComposingGpUnitIds".into(), json!(u.composing));
            }
            o.insert("Name".into(), intl_json(&u.name));
            if let (Some(r), Some(t)) = (u.reporting, u.total) {
                o.insert("SubUnitsReported".into(), json!(r));
                o.insert("TotalSubUnits".into(), json!(t));
            }
            o.insert("Type".into(), json!(u.type_));
            if let Some(t) = &u.other_type {
                o.insert("OtherType".into(), json!(t));
            }
            Value::Object(o)
        })
        .collect();
    let candidates: Vec<Value> = m
        .candidates
        .iter()
        .map(|c| {
            let mut o = Map::new();
            o.insert("@type".into(), json!("ElectionResults.Candidate"));
            o.insert("@id".into(), json!(c.id));
            o.insert("BallotName".into(), intl_json(&c.name));
            if let Some(p) = &c.party {
                o.insert("PartyId".into(), json!(p));
            }
            Value::Object(o)
        })
        .collect();
    let contests: Vec<Value> = m
        .contests
        .iter()
        .map(|c| {
            let kind = match c.kind {
                ContestKind::BallotMeasure => "BallotMeasureContest",
                ContestKind::Party => "PartyContest",
                ContestKind::Retention => "RetentionContest",
                _ => "CandidateContest",
            };
            let selections: Vec<Value> = c
                .selections
                .iter()
                .map(|s| {
                    let counts: Vec<Value> = s
                        .counts
                        .iter()
                        .map(|v| {
                            let mut o = Map::new();
                            o.insert("@type".into(), json!("ElectionResults.VoteCounts"));
                            o.insert("GpUnitId".into(), json!(v.unit));
                            o.insert("Type".into(), json!(v.type_));
                            if let Some(t) = &v.other_type {
                                o.insert("OtherType".into(), json!(t));
                            }
                            o.insert("Count".into(), json!(v.count));
                            Value::Object(o)
                        })
                        .collect();
                    let mut o = Map::new();
                    o.insert("@id".into(), json!(s.id));
                    o.insert("VoteCounts".into(), json!(counts));
                    match c.kind {
                        ContestKind::BallotMeasure | ContestKind::Retention => {
                            o.insert(
                                "@type".into(),
                                json!("ElectionResults.BallotMeasureSelection"),
                            );
                            o.insert("Selection".into(), intl_json(&s.name));
                        }
                        ContestKind::Party if s.party.is_some() => {
                            o.insert("@type".into(), json!("ElectionResults.PartySelection"));
                            o.insert("PartyIds".into(), json!([s.party]));
                        }
                        ContestKind::Party => {
                            o.insert(
                                "@type".into(),
                                json!("ElectionResults.BallotMeasureSelection"),
                            );
                            o.insert("Selection".into(), intl_json(&s.name));
                        }
                        _ => {
                            o.insert("@type".into(), json!("ElectionResults.CandidateSelection"));
                            if let Some(cid) = &s.candidate {
                                o.insert("CandidateIds".into(), json!([cid]));
                            }
                            if s.write_in {
                                o.insert("IsWriteIn".into(), json!(true));
                            }
                        }
                    }
                    Value::Object(o)
                })
                .collect();
            let mut o = Map::new();
            o.insert("@type".into(), json!(format!("ElectionResults.{kind}")));
            o.insert("@id".into(), json!(c.id));
            o.insert("ContestSelection".into(), json!(selections));
            o.insert("ElectionDistrictId".into(), json!(c.district));
            o.insert("Name".into(), json!(c.name));
            if kind == "CandidateContest" {
                if let Some(p) = &c.primary_party {
                    o.insert("PrimaryPartyIds".into(), json!([p]));
                }
                o.insert("VotesAllowed".into(), json!(c.votes_allowed));
            }
            if kind == "RetentionContest" {
                o.insert(
                    "CandidateId".into(),
                    json!(m.candidates.first().map_or(SCOPE_ID, |c| c.id.as_str())),
                );
            }
            Value::Object(o)
        })
        .collect();
    let date = election_date(election_id, generated);
    let mut election = Map::new();
    election.insert("@type".into(), json!("ElectionResults.Election"));
    if !candidates.is_empty() {
        election.insert("Candidate".into(), json!(candidates));
    }
    election.insert("Contest".into(), json!(contests));
    election.insert("ElectionScopeId".into(), json!(SCOPE_ID));
    election.insert("Name".into(), intl_json(election_id));
    election.insert("StartDate".into(), json!(date));
    election.insert("EndDate".into(), json!(date));
    election.insert("Type".into(), json!(m.election_type));
    let parties: Vec<Value> = m
        .parties
        .iter()
        .map(|(id, label)| {
            json!({"@type": "ElectionResults.Party", "@id": id, "Name": intl_json(label)})
        })
        .collect();
    let mut report = Map::new();
    report.insert("@type".into(), json!("ElectionResults.ElectionReport"));
    report.insert("Election".into(), json!([Value::Object(election)]));
    report.insert("Format".into(), json!(m.format));
    report.insert("GeneratedDate".into(), json!(generated));
    report.insert("GpUnit".into(), json!(units));
    report.insert("Issuer".into(), json!("votewire"));
    report.insert("IssuerAbbreviation".into(), json!("votewire"));
    if m.is_test {
        report.insert("IsTest".into(), json!(true));
    }
    if !parties.is_empty() {
        report.insert("Party".into(), json!(parties));
    }
    report.insert("SequenceStart".into(), json!(1));
    report.insert("SequenceEnd".into(), json!(1));
    report.insert("Status".into(), json!(m.status));
    report.insert(
        "VendorApplicationId".into(),
        json!(format!("votewire {}", env!("CARGO_PKG_VERSION"))),
    );
    Value::Object(report)
}

/// The `ElectionReport` for `election_id` from its current `cells`,
/// generated at `generated` (`YYYY-MM-DDTHH:MM:SSZ`).
pub fn election_report(
    election_id: &str,
    cells: &[VoteCell],
    generated: &str,
    format: ExportFormat,
) -> ExportedReport {
    let m = model(cells);
    let bytes = match format {
        ExportFormat::Xml => to_xml(&m, election_id, generated).into_bytes(),
        ExportFormat::Json => {
            serde_json::to_vec_pretty(&to_json(&m, election_id, generated)).unwrap_or_default()
        }
    };
    ExportedReport {
        bytes,
        status: m.status,
        contests: m.contests.len(),
        units: m.units.len(),
        vote_counts: m.vote_counts,
    }
}
