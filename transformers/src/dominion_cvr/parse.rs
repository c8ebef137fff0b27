use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use serde::Deserialize;
use votewire_schemas::vote_type::normalize_vote_type;
use votewire_schemas::*;

use crate::cells::{CellBuilder, CellTable, choice_kind};
use crate::counts::{MAX_VOTES, check_count};
use crate::error::{Location, Rejector, TransformError};
use crate::json::{JsonTree, check_json_start, check_json_start_as, json_error};
use crate::limits::{MAX_EXPANSION_RATIO, MAX_PAYLOAD_BYTES, is_zip};
use crate::payload::PayloadContext;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Export {
    sessions: Vec<Session>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Session {
    counting_group_id: i64,
    original: Option<Ballot>,
    #[serde(default)]
    modified: Option<Ballot>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Ballot {
    precinct_portion_id: i64,
    #[serde(default)]
    is_current: Option<bool>,
    #[serde(default)]
    cards: Vec<Card>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Card {
    #[serde(default)]
    contests: Vec<CardContest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CardContest {
    id: i64,
    #[serde(default)]
    undervotes: i64,
    #[serde(default)]
    overvotes: i64,
    #[serde(default)]
    marks: Vec<Mark>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Mark {
    candidate_id: i64,
    #[serde(default = "one")]
    rank: i64,
    #[serde(default)]
    is_ambiguous: bool,
    #[serde(default)]
    is_vote: bool,
}

fn one() -> i64 {
    1
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Manifest {
    #[serde(default)]
    list: Vec<ManifestEntry>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    id: i64,
    description: String,
    #[serde(default, rename = "Type")]
    entry_type: Option<String>,
    #[serde(default)]
    vote_for: Option<i32>,
    #[serde(default)]
    precinct_id: Option<i64>,
}

/// The names an export's ids refer to.
#[derive(Default)]
pub struct Manifests {
    contests: HashMap<i64, ManifestEntry>,
    candidates: HashMap<i64, ManifestEntry>,
    portions: HashMap<i64, ManifestEntry>,
    groups: HashMap<i64, ManifestEntry>,
}

impl Manifests {
    fn add(&mut self, name: &str, bytes: &[u8], r: &Rejector) -> Result<(), TransformError> {
        let target = match name {
            n if n.contains("ContestManifest") => &mut self.contests,
            n if n.contains("CandidateManifest") => &mut self.candidates,
            n if n.contains("PrecinctPortionManifest") => &mut self.portions,
            n if n.contains("CountingGroupManifest") => &mut self.groups,
            _ => return Ok(()),
        };
        check_json_start(bytes, r).map_err(|mut err| {
            err.message = format!("{name}: {}", err.message);
            err
        })?;
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| {
            let mut err = json_error(r, e);
            err.message = format!("{name}: {}", err.message);
            err
        })?;
        target.extend(m.list.into_iter().map(|e| (e.id, e)));
        Ok(())
    }
}

/// Every (file name, bytes) of a zip, inflated under the shared caps.
fn zip_entries(bytes: &[u8], r: &Rejector) -> Result<Vec<(String, Vec<u8>)>, TransformError> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| r.truncated(Location::Whole, format!("not a readable zip archive: {e}")))?;
    let mut budget =
        MAX_PAYLOAD_BYTES.min((bytes.len() as u64).saturating_mul(MAX_EXPANSION_RATIO));
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| r.schema(Location::Whole, format!("zip entry {i}: {e}")))?;
        let name = entry.name().map(|n| n.to_string()).unwrap_or_default();
        let mut buf = Vec::new();
        (&mut entry)
            .take(budget + 1)
            .read_to_end(&mut buf)
            .map_err(|e| r.truncated(Location::Path(name.clone()), format!("inflating: {e}")))?;
        if buf.len() as u64 > budget {
            return Err(r.limit(
                Location::Path(name),
                "the archive inflates past its cap (zip bomb?)",
            ));
        }
        budget -= buf.len() as u64;
        out.push((name, buf));
    }
    Ok(out)
}

/// (contest, choice key, precinct portion, counting group) -> count.
type Tallies = BTreeMap<(i64, String, i64, i64), i64>;

pub(super) fn tally(
    bytes: &[u8],
    ctx: &PayloadContext,
    companion: Option<&[u8]>,
    r: &Rejector,
) -> Result<CellTable, TransformError> {
    let files = read_exports(bytes, companion, r)?;
    let tallies = count_marks(&files.exports, r)?;
    Ok(build_cells(ctx, &files.manifests, tallies))
}

/// A payload's files: the CVR exports, by name, and the manifests.
struct CvrFiles {
    exports: Vec<(String, Vec<u8>)>,
    manifests: Manifests,
}

/// The CVR exports (the payload, or the `CvrExport` files of its zip) and
/// the manifests (the zip's other files, and the companion's).
fn read_exports(
    bytes: &[u8],
    companion: Option<&[u8]>,
    r: &Rejector,
) -> Result<CvrFiles, TransformError> {
    let mut manifests = Manifests::default();
    let mut exports: Vec<(String, Vec<u8>)> = Vec::new();
    if is_zip(bytes) {
        for (name, data) in zip_entries(bytes, r)? {
            if name.contains("CvrExport") {
                exports.push((name, data));
            } else {
                manifests.add(&name, &data, r)?;
            }
        }
        if exports.is_empty() {
            return Err(r.not_this_format(Location::Whole, "the zip holds no CvrExport file"));
        }
    } else {
        exports.push(("CvrExport".into(), bytes.to_vec()));
    }
    match companion {
        Some(c) if is_zip(c) => {
            for (name, data) in zip_entries(c, r)? {
                manifests.add(&name, &data, r)?;
            }
        }
        Some(c) => {
            // A bundle of manifests, parsed as a `Value` per manifest.
            check_json_start_as(c, JsonTree::Value, r)?;
            let bundle: BTreeMap<String, serde_json::Value> =
                serde_json::from_slice(c).map_err(|e| json_error(r, e))?;
            for (name, v) in bundle {
                manifests.add(&name, v.to_string().as_bytes(), r)?;
            }
        }
        None => {}
    }

    Ok(CvrFiles { exports, manifests })
}

/// Every current ballot's votes (marks that are votes, unambiguous and of
/// rank one) and each contest's under- and overvotes, counted per
/// contest, choice, precinct portion and counting group.
fn count_marks(exports: &[(String, Vec<u8>)], r: &Rejector) -> Result<Tallies, TransformError> {
    let mut tallies = Tallies::new();
    for (name, data) in exports {
        check_json_start(data, r)?;
        let export: Export = serde_json::from_slice(data).map_err(|e| {
            let mut err = json_error(r, e);
            err.message = format!("{name}: {}", err.message);
            err
        })?;
        for s in &export.sessions {
            let ballot = match (&s.modified, &s.original) {
                (Some(m), _) if m.is_current == Some(true) => m,
                (_, Some(o)) => o,
                (Some(m), None) => m,
                (None, None) => continue,
            };
            for card in &ballot.cards {
                for c in &card.contests {
                    for m in c
                        .marks
                        .iter()
                        .filter(|m| m.is_vote && !m.is_ambiguous && m.rank == 1)
                    {
                        *tallies
                            .entry((
                                c.id,
                                m.candidate_id.to_string(),
                                ballot.precinct_portion_id,
                                s.counting_group_id,
                            ))
                            .or_default() += 1;
                    }
                    for (label, n) in [("Undervotes", c.undervotes), ("Overvotes", c.overvotes)] {
                        if n == 0 {
                            continue;
                        }
                        // One card's under- or overvotes in one contest:
                        // never negative, never more than a count can be,
                        // and the sum is checked (a wrapped sum is a
                        // plausible-looking wrong number).
                        let bad = |problem: String| {
                            r.schema(
                                Location::Path(format!(
                                    "{name}/Sessions/Cards/Contests[@Id={}]/{label}",
                                    c.id
                                )),
                                problem,
                            )
                        };
                        check_count(n, false).map_err(|p| bad(format!("{n} is {p}")))?;
                        let total = tallies
                            .entry((
                                c.id,
                                label.to_string(),
                                ballot.precinct_portion_id,
                                s.counting_group_id,
                            ))
                            .or_default();
                        *total = total
                            .checked_add(n)
                            .filter(|t| *t <= MAX_VOTES)
                            .ok_or_else(|| bad(format!("the {label} total passes {MAX_VOTES}")))?;
                    }
                }
            }
        }
    }

    Ok(tallies)
}

/// One cell per tally, named from the manifests (ids where they are
/// silent).
fn build_cells(ctx: &PayloadContext, manifests: &Manifests, tallies: Tallies) -> CellTable {
    let mut b = CellBuilder::new(ctx, ctx.mode, None, None);
    let mut contests: HashMap<i64, u32> = HashMap::new();
    let mut choices: HashMap<(i64, String), u32> = HashMap::new();
    let mut units: HashMap<i64, u32> = HashMap::new();
    let mut labels: HashMap<i64, u32> = HashMap::new();
    for ((contest_id, choice_key, portion, group), votes) in tallies {
        let contest = *contests.entry(contest_id).or_insert_with(|| {
            let m = manifests.contests.get(&contest_id);
            let id = contest_id.to_string();
            let c = ContestRef {
                source_id: b.text(&id),
                name: b.text(m.map_or(id.as_str(), |m| m.description.as_str())),
                kind: ContestKind::Candidate,
                vote_for: m.and_then(|m| m.vote_for),
                primary_party: None,
            };
            b.contest(c)
        });
        let choice = *choices
            .entry((contest_id, choice_key.clone()))
            .or_insert_with(|| {
                let m = choice_key
                    .parse::<i64>()
                    .ok()
                    .and_then(|id| manifests.candidates.get(&id));
                let name = m.map_or(choice_key.as_str(), |m| m.description.as_str());
                let kind = match m.and_then(|m| m.entry_type.as_deref()) {
                    Some("WriteIn") | Some("QualifiedWriteIn") => ChoiceKind::WriteIn,
                    _ => choice_kind(name),
                };
                let c = ChoiceRef {
                    source_id: b.text(&choice_key),
                    name: b.text(name),
                    kind,
                    party: None,
                    incumbent: None,
                };
                b.choice(c)
            });
        let unit = *units.entry(portion).or_insert_with(|| {
            let m = manifests.portions.get(&portion);
            let id = portion.to_string();
            let u = ReportingUnitRef {
                source_id: b.text(&id),
                name: b.text(m.map_or(id.as_str(), |m| m.description.as_str())),
                unit_type: UnitType::SplitPrecinct,
                type_raw: Some(b.text("PrecinctPortion")),
                parent_source_id: m
                    .and_then(|m| m.precinct_id)
                    .map(|p| b.text(&format!("precinct:{p}"))),
                fips: None,
            };
            b.unit(u)
        });
        let label = *labels.entry(group).or_insert_with(|| {
            let raw = manifests.groups.get(&group).map_or_else(
                || format!("CountingGroup {group}"),
                |m| m.description.clone(),
            );
            b.label(normalize_vote_type(&raw), &raw)
        });
        b.push(contest, unit, choice, label, votes);
    }
    b.finish()
}
