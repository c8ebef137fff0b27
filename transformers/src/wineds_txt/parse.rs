use rustc_hash::FxHashMap;
use votewire_schemas::vote_type::normalize_vote_type;
use votewire_schemas::*;

use crate::cells::{CellBuilder, CellTable, choice_kind, is_virtual_unit_name};
use crate::error::{Location, Rejector, TransformError};
use crate::limits::looks_like_html;
use crate::payload::PayloadContext;

/// `00827` -> 827, `000-1` -> -1, `00000` -> 0.
fn count(field: &str) -> Option<i64> {
    let t = field.trim().trim_start_matches('0');
    if t.is_empty() {
        return field.trim().chars().all(|c| c == '0').then_some(0);
    }
    t.parse().ok()
}

/// One count record's fields, decoded from its fixed-width columns.
struct CountRecord {
    contest_no: String,
    choice_no: String,
    votes: i64,
    party: String,
    contest_name: String,
    choice_name: String,
    precinct: String,
    /// The vote type (`reporting` column); `total` when blank.
    reporting: String,
}

impl CountRecord {
    /// Line `line_no`, which is not blank.
    fn read(line: &str, line_no: u64, r: &Rejector) -> Result<CountRecord, TransformError> {
        let at = |column: u64| Location::Line {
            line: line_no,
            column: Some(column),
        };
        let chars: Vec<char> = line.chars().collect();
        if chars.len() < 120 || chars[0] != '0' {
            return Err(r.not_this_format(
                at(1),
                format!(
                    "a {}-character line that is not a WinEDS count record",
                    chars.len()
                ),
            ));
        }
        let field = |from: usize, to: usize| -> String {
            chars[from.min(chars.len())..to.min(chars.len())]
                .iter()
                .collect()
        };
        let (contest_no, choice_no) = (field(1, 4), field(4, 7));
        if !contest_no
            .chars()
            .chain(choice_no.chars())
            .chain(field(7, 11).chars())
            .all(|c| c.is_ascii_digit())
        {
            return Err(r.schema(
                at(2),
                format!(
                    "contest/choice/precinct numbers {:?} are not digits",
                    field(1, 11)
                ),
            ));
        }
        let votes = count(&field(11, 16))
            .ok_or_else(|| r.schema(at(12), format!("votes {:?} is not a count", field(11, 16))))?;
        let party = field(16, 26).trim().to_string();
        let contest_name = field(26, 82).trim().to_string();
        let choice_name = field(82, 120).trim().to_string();
        let precinct = field(120, 150).trim().to_string();
        let reporting = field(175, 205).trim().to_string();
        if precinct.is_empty() || contest_name.is_empty() {
            return Err(r.schema(at(27), "a count line without a contest or precinct name"));
        }
        Ok(CountRecord {
            contest_no,
            choice_no,
            votes,
            party,
            contest_name,
            choice_name,
            precinct,
            reporting: if reporting.is_empty() {
                "total".to_string()
            } else {
                reporting
            },
        })
    }
}

/// The contests, precincts, choices and vote types seen so far.
#[derive(Default)]
struct Identities {
    contests: FxHashMap<String, (u32, ContestKind)>,
    units: FxHashMap<String, u32>,
    choices: FxHashMap<(u32, String), (u32, ChoiceKind)>,
    labels: FxHashMap<String, u32>,
    /// contest id -> (has a Yes/No choice, has no candidate choice)
    measure: FxHashMap<u32, (bool, bool)>,
}

impl Identities {
    /// The record's contest (`number|name`), a pseudo contest for
    /// registered voters and ballots cast.
    fn contest(&mut self, b: &mut CellBuilder, rec: &CountRecord) -> (u32, ContestKind) {
        let contest_key = format!("{}|{}", rec.contest_no, rec.contest_name);
        if let Some(c) = self.contests.get(&contest_key) {
            return *c;
        }
        let upper = rec.contest_name.to_ascii_uppercase();
        let kind = if upper.starts_with("REGISTERED VOTERS") || upper.starts_with("BALLOTS CAST") {
            ContestKind::Pseudo
        } else {
            ContestKind::Candidate
        };
        let c = ContestRef {
            source_id: b.text(&contest_key),
            name: b.text(&rec.contest_name),
            kind,
            vote_for: None,
            primary_party: None,
        };
        let entry = (b.contest(c), kind);
        self.contests.insert(contest_key, entry);
        entry
    }

    fn unit(&mut self, b: &mut CellBuilder, precinct: &str) -> u32 {
        if let Some(u) = self.units.get(precinct) {
            return *u;
        }
        let id = b.text(precinct);
        let u = b.unit(ReportingUnitRef {
            source_id: id.clone(),
            name: id,
            unit_type: if is_virtual_unit_name(precinct) {
                UnitType::Virtual
            } else {
                UnitType::Precinct
            },
            type_raw: None,
            parent_source_id: None,
            fips: None,
        });
        self.units.insert(precinct.to_string(), u);
        u
    }

    /// The record's choice in `contest`, numbered within it.
    fn choice(
        &mut self,
        b: &mut CellBuilder,
        rec: &CountRecord,
        contest: u32,
        contest_kind: ContestKind,
    ) -> (u32, ChoiceKind) {
        if let Some(c) = self.choices.get(&(contest, rec.choice_no.clone())) {
            return *c;
        }
        let kind = match (contest_kind, rec.contest_name.to_ascii_uppercase()) {
            (ContestKind::Pseudo, n) if n.starts_with("REGISTERED") => ChoiceKind::RegisteredVoters,
            (ContestKind::Pseudo, _) => ChoiceKind::BallotsCast,
            _ => choice_kind(&rec.choice_name),
        };
        let c = ChoiceRef {
            source_id: b.text(&rec.choice_no),
            name: b.text(&rec.choice_name),
            kind,
            party: (!rec.party.is_empty()).then(|| b.text(&rec.party)),
            incumbent: None,
        };
        let entry = (b.choice(c), kind);
        self.choices.insert((contest, rec.choice_no.clone()), entry);
        entry
    }

    fn label(&mut self, b: &mut CellBuilder, raw: &str) -> u32 {
        if let Some(l) = self.labels.get(raw) {
            return *l;
        }
        let l = b.label(normalize_vote_type(raw), raw);
        self.labels.insert(raw.to_string(), l);
        l
    }
}

pub(super) fn parse(
    bytes: &[u8],
    ctx: &PayloadContext,
    r: &Rejector,
) -> Result<CellTable, TransformError> {
    if looks_like_html(bytes) {
        return Err(r.not_this_format(Location::Byte(0), "an HTML page, not a WinEDS export"));
    }
    // The exports are ASCII; anything else is read as windows-1252.
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => {
            encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0
        }
    };
    let mut b = CellBuilder::new(ctx, ctx.mode, None, None);
    let mut seen = Identities::default();
    let mut lines = 0;
    for (i, line) in text.lines().enumerate() {
        let line_no = i as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let rec = CountRecord::read(line, line_no, r)?;
        lines += 1;
        let (contest, contest_kind) = seen.contest(&mut b, &rec);
        let unit = seen.unit(&mut b, &rec.precinct);
        let (choice, kind) = seen.choice(&mut b, &rec, contest, contest_kind);
        if contest_kind == ContestKind::Candidate {
            let m = seen.measure.entry(contest).or_insert((false, true));
            match kind {
                ChoiceKind::Yes | ChoiceKind::No => m.0 = true,
                ChoiceKind::Candidate => m.1 = false,
                _ => {}
            }
        }
        let label = seen.label(&mut b, &rec.reporting);
        b.push(contest, unit, choice, label, rec.votes);
    }
    if lines == 0 {
        return Err(r.truncated(Location::Whole, "no count lines"));
    }
    for (contest, (yes_no, no_candidate)) in seen.measure {
        if yes_no && no_candidate {
            let m = ContestRef {
                kind: ContestKind::BallotMeasure,
                ..(**b.contest_ref(contest)).clone()
            };
            b.replace_contest(contest, m);
        }
    }
    Ok(b.finish())
}
