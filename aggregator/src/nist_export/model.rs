//! The report model built from one election's current cells: units (with
//! the parents the cells only name), parties, contests, selections,
//! candidates and counts, each with a document-unique `xs:ID`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use votewire_schemas::nist::{COUNT_ITEM_TYPES, REPORTING_UNIT_TYPES, reporting_unit_type};
use votewire_schemas::{ChoiceKind, ContestKind, UnitType, VoteCell};

use super::SCOPE_ID;

/// A NIST `Type` (and `OtherType`) for a raw label among `allowed`.
pub(super) fn nist_type(raw: &str, allowed: &[&str]) -> (String, Option<String>) {
    if allowed.contains(&raw) {
        (raw.to_string(), None)
    } else {
        ("other".to_string(), Some(raw.to_string()))
    }
}

/// Hands out document-unique `xs:ID`s.
#[derive(Default)]
pub(super) struct Ids {
    pub(super) given: HashMap<(u8, String), String>,
    pub(super) taken: BTreeSet<String>,
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

pub(super) const UNIT: u8 = 0;
pub(super) const CONTEST: u8 = 1;
pub(super) const SELECTION: u8 = 2;
pub(super) const CANDIDATE: u8 = 3;
pub(super) const PARTY: u8 = 4;

pub(super) struct Unit {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) type_: String,
    pub(super) other_type: Option<String>,
    pub(super) composing: BTreeSet<String>,
    pub(super) reporting: Option<i32>,
    pub(super) total: Option<i32>,
}

pub(super) struct Count {
    pub(super) unit: String,
    pub(super) type_: String,
    pub(super) other_type: Option<String>,
    pub(super) count: i64,
}

pub(super) struct Selection {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) write_in: bool,
    pub(super) candidate: Option<String>,
    pub(super) party: Option<String>,
    pub(super) counts: Vec<Count>,
}

pub(super) struct Contest {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) kind: ContestKind,
    pub(super) votes_allowed: i32,
    pub(super) primary_party: Option<String>,
    pub(super) district: String,
    pub(super) selections: Vec<Selection>,
}

pub(super) struct Candidate {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) party: Option<String>,
}

pub(super) struct Model {
    pub(super) units: Vec<Unit>,
    pub(super) parties: Vec<(String, String)>,
    pub(super) candidates: Vec<Candidate>,
    pub(super) contests: Vec<Contest>,
    pub(super) status: &'static str,
    pub(super) format: &'static str,
    pub(super) election_type: &'static str,
    pub(super) is_test: bool,
    pub(super) vote_counts: usize,
}

/// How a source id becomes a document key: prefixed with its feed when
/// the election has several feeds.
pub(super) struct FeedPrefix {
    pub(super) several_feeds: bool,
}

impl FeedPrefix {
    fn key(&self, feed: &str, id: &str) -> String {
        if self.several_feeds {
            format!("{feed}.{id}")
        } else {
            id.to_string()
        }
    }
}

/// The units by key, and each unit's parent where the source named one.
pub(super) struct UnitTree {
    pub(super) units: BTreeMap<String, Unit>,
    pub(super) parent_of: BTreeMap<String, String>,
}

impl UnitTree {
    /// The root above `key`.
    fn root_of(&self, key: &str) -> String {
        let mut k = key.to_string();
        let mut hops = 0;
        while let Some(p) = self.parent_of.get(&k) {
            k = p.clone();
            hops += 1;
            if hops > 16 {
                break; // a cycle in the source's parents: stop climbing
            }
        }
        k
    }
}

/// The contests, their selections and counts, and what they say of the
/// election.
#[derive(Default)]
pub(super) struct ContestsFound {
    pub(super) contests: BTreeMap<String, Contest>,
    /// The roots of the units each contest was counted in.
    pub(super) contest_roots: BTreeMap<String, BTreeSet<String>>,
    pub(super) candidates: Vec<Candidate>,
    /// Party label → id.
    pub(super) parties: BTreeMap<String, String>,
    pub(super) vote_counts: usize,
    pub(super) is_test: bool,
    pub(super) any_primary: bool,
}

/// Builds the report model from the cells of one election: the units,
/// then the contests, then each contest's district and the election
/// scope.
pub(super) fn model(cells: &[VoteCell]) -> Model {
    let feeds: BTreeSet<&str> = cells
        .iter()
        .map(|c| &*c.header.provenance.feed_id)
        .collect();
    let prefix = FeedPrefix {
        several_feeds: feeds.len() > 1,
    };
    let mut ids = Ids::default();
    ids.taken.insert(SCOPE_ID.to_string());
    let tree = collect_units(cells, &prefix, &mut ids);
    let mut found = collect_contests(cells, &prefix, &mut ids, &tree);
    for (key, contest) in found.contests.iter_mut() {
        let roots = &found.contest_roots[key];
        contest.district = match roots.iter().next() {
            Some(r) if roots.len() == 1 => tree.units[r].id.clone(),
            _ => SCOPE_ID.to_string(),
        };
        for s in &mut contest.selections {
            s.counts
                .sort_by(|a, b| (&a.unit, &a.type_).cmp(&(&b.unit, &b.type_)));
        }
    }
    let UnitTree { units, parent_of } = tree;
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
        parties: found
            .parties
            .into_iter()
            .map(|(label, id)| (id, label))
            .collect(),
        candidates: found.candidates,
        contests: found.contests.into_values().collect(),
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
        election_type: if found.any_primary {
            "primary"
        } else {
            "general"
        },
        is_test: found.is_test,
        vote_counts: found.vote_counts,
    }
}

/// Units the cells report, then parents they only name (typed one level
/// up from their children), each composing its children.
pub(super) fn collect_units(cells: &[VoteCell], prefix: &FeedPrefix, ids: &mut Ids) -> UnitTree {
    let mut units: BTreeMap<String, Unit> = BTreeMap::new();
    let mut parent_of: BTreeMap<String, String> = BTreeMap::new();
    let mut child_types: BTreeMap<String, Vec<UnitType>> = BTreeMap::new();
    for c in cells {
        let feed = &*c.header.provenance.feed_id;
        let key = prefix.key(feed, &c.unit.source_id);
        let u = units.entry(key.clone()).or_insert_with(|| {
            let raw = c.unit.type_raw.as_deref().unwrap_or("");
            let (type_, other_type) = if REPORTING_UNIT_TYPES.contains(&raw) || raw == "other" {
                (raw.to_string(), None)
            } else {
                (reporting_unit_type(c.unit.unit_type).to_string(), None)
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
            let pk = prefix.key(feed, p);
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
            .filter(|_| prefix.several_feeds)
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
    UnitTree { units, parent_of }
}

/// Parties, contests, selections, candidates, and one count per cell
/// (pseudo contests left out).
pub(super) fn collect_contests(
    cells: &[VoteCell],
    prefix: &FeedPrefix,
    ids: &mut Ids,
    tree: &UnitTree,
) -> ContestsFound {
    let mut found = ContestsFound::default();
    let ContestsFound {
        contests,
        contest_roots,
        candidates,
        parties,
        vote_counts,
        is_test,
        any_primary,
    } = &mut found;
    let mut party_id = |label: &str, ids: &mut Ids| -> String {
        parties
            .entry(label.to_string())
            .or_insert_with(|| ids.id(PARTY, &format!("party-{label}")))
            .clone()
    };
    let mut selection_index: HashMap<(String, String), usize> = HashMap::new();
    for c in cells {
        if c.contest.kind == ContestKind::Pseudo {
            continue;
        }
        *is_test |= c.header.mode == votewire_schemas::FeedMode::Test;
        let feed = &*c.header.provenance.feed_id;
        let ckey = prefix.key(feed, &c.contest.source_id);
        let primary = c.contest.primary_party.as_deref().map(|p| party_id(p, ids));
        *any_primary |= primary.is_some();
        let contest = contests.entry(ckey.clone()).or_insert_with(|| Contest {
            id: ids.id(CONTEST, &ckey),
            name: c.contest.name.to_string(),
            kind: c.contest.kind,
            votes_allowed: c.contest.vote_for.unwrap_or(1),
            primary_party: primary,
            district: String::new(),
            selections: Vec::new(),
        });
        let ukey = prefix.key(feed, &c.unit.source_id);
        contest_roots
            .entry(ckey.clone())
            .or_default()
            .insert(tree.root_of(&ukey));
        let skey = (ckey.clone(), c.choice.source_id.to_string());
        let i = match selection_index.get(&skey) {
            Some(i) => *i,
            None => {
                let sid = ids.id_preferring(
                    SELECTION,
                    &format!("{ckey}/{}", c.choice.source_id),
                    &prefix.key(feed, &c.choice.source_id),
                );
                let party = c.choice.party.as_deref().map(|p| party_id(p, ids));
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
        let (type_, other_type) = nist_type(&c.vote_type_raw, COUNT_ITEM_TYPES);
        contest.selections[i].counts.push(Count {
            unit: tree.units[&ukey].id.clone(),
            type_,
            other_type,
            count: c.votes,
        });
        *vote_counts += 1;
    }
    found
}
