//! A streaming pass over `detail.xml` with the Clarity tokenizer in
//! [`super::scan`]: no DOM, no DTDs, no entity expansion beyond the five
//! predefined entities and character references.

use rustc_hash::FxHashMap;

use votewire_schemas::*;

use super::attrs::{
    Attrs, RawAttrs, attrs, int, is, leaf_attrs, opt_text, parse_votes, primary_party_suffix,
    text_of, trim_bytes,
};
use super::config::{ClarityXmlConfig, SiteLevel};
use super::scan::{ScanError, Scanner, Token};
use crate::cells::{
    CellBuilder, CellTable, choice_kind, incumbent_in_name, is_virtual_unit_name, party_in_name,
};
use crate::error::{Location, Rejector, TransformError};
use crate::limits::looks_like_html;
use crate::payload::PayloadContext;
use crate::timefmt::parse_us_datetime;
use votewire_schemas::vote_type::normalize_vote_type;

/// Reporting counts: (reported, total).
type Precincts = (Option<i32>, Option<i32>);

struct OpenContest<'x> {
    contest: u32,
    key: Text,
    precincts: Precincts,
    /// Per-county reporting from `<ParticipatingCounties>`.
    participating: FxHashMap<&'x [u8], Precincts>,
    has_yes_no: bool,
}

/// One remembered leaf position.
struct LeafSlot<'x> {
    raw_name: &'x [u8],
    unit: u32,
    /// Site-wide turnout reporting for the unit.
    turnout: Precincts,
    /// The leaf's reporting in a contest, remembered for the contest's next
    /// choices and vote types: (contest, leaf is a County, reporting).
    in_contest: Option<(u32, bool, Precincts)>,
}

struct OpenVoteType {
    label: u32,
    raw: Text,
    choice: u32,
}

/// `'c` is the payload context, `'x` the document: names are kept as slices
/// of it, never copied.
struct State<'c, 'x> {
    ctx: &'c PayloadContext,
    builder: Option<CellBuilder>,
    timestamp: Option<String>,
    region: Option<String>,
    in_timestamp: bool,
    in_region: bool,
    site_level: SiteLevel,
    /// The site's unit and its id (the parent of every leaf).
    site_unit: Option<(u32, Text)>,
    leaf_units: FxHashMap<&'x [u8], (u32, Precincts)>,
    /// Leaves in the order the previous VoteType listed them: every VoteType
    /// of a file lists the same units in the same order, so the i-th leaf is
    /// almost always the previous i-th leaf, found without hashing.
    leaf_order: Vec<LeafSlot<'x>>,
    leaf_index: usize,
    /// County reporting from the site-wide turnout section (state sites).
    turnout_counties: FxHashMap<&'x [u8], Precincts>,
    in_turnout: bool,
    contest: Option<OpenContest<'x>>,
    in_participating: bool,
    /// The open choice: its id and key.
    choice: Option<(u32, Text)>,
    vote_type: Option<OpenVoteType>,
    /// Expected rows (one per 75 bytes in real files), reserved up front.
    expected_rows: usize,
    /// Normalized vote types by trimmed raw label: a file repeats a handful
    /// of labels thousands of times.
    vote_types: FxHashMap<String, VoteType>,
}

pub(super) fn parse(
    xml: &[u8],
    ctx: &PayloadContext,
    config: &ClarityXmlConfig,
    r: &Rejector,
) -> Result<CellTable, TransformError> {
    if looks_like_html(xml) {
        return Err(r.not_this_format(Location::Byte(0), "an HTML page, not Clarity detail.xml"));
    }
    let site_level = config.site_level.unwrap_or_else(|| {
        let finder = |needle: &[u8]| memchr::memmem::find(xml, needle).is_some();
        if finder(b"<ElectionVoterTurnout") || finder(b"<County ") {
            SiteLevel::State
        } else {
            SiteLevel::County
        }
    });
    let mut st = State {
        ctx,
        builder: None,
        timestamp: None,
        region: None,
        in_timestamp: false,
        in_region: false,
        site_level,
        site_unit: None,
        leaf_units: FxHashMap::default(),
        leaf_order: Vec::new(),
        leaf_index: 0,
        turnout_counties: FxHashMap::default(),
        in_turnout: false,
        contest: None,
        in_participating: false,
        choice: None,
        vote_type: None,
        expected_rows: xml.len() / 75,
        vote_types: FxHashMap::default(),
    };
    let mut scanner = Scanner::new(xml);
    let mut seen_root = false;
    loop {
        let pos = scanner.position();
        let token = scanner.next_token().map_err(|e| match e {
            ScanError::Truncated { at, what } => r.truncated(Location::Byte(at), what),
            ScanError::Doctype { at } => r.schema(
                Location::Byte(at),
                "DTDs are refused (no entity declarations, no external entities)",
            ),
            ScanError::Malformed { at, what } => {
                r.schema(Location::Byte(at), format!("malformed XML: {what}"))
            }
        })?;
        match token {
            Token::Eof => break,
            Token::Start { name, empty } => {
                let name = local_name(name);
                if !seen_root {
                    check_root(name, pos, r)?;
                    if empty {
                        return Err(r.truncated(Location::Byte(pos), "empty <ElectionResult/>"));
                    }
                    seen_root = true;
                    continue;
                }
                st.start(name, scanner.attributes(), pos, empty, r)?;
            }
            Token::End { name } => match local_name(name) {
                b"Timestamp" => st.in_timestamp = false,
                b"Region" => st.in_region = false,
                b"VoterTurnout" | b"ElectionVoterTurnout" => st.in_turnout = false,
                b"ParticipatingCounties" => st.in_participating = false,
                b"Contest" => st.end_contest(),
                b"Choice" => st.choice = None,
                b"VoteType" => st.vote_type = None,
                _ => {}
            },
            Token::Text(raw) => {
                let wanted = st.in_timestamp || st.in_region;
                // Text is used only in <Timestamp> and <Region>; elsewhere it
                // is still checked for entities nobody declared.
                if wanted || memchr::memchr(b'&', raw).is_some() {
                    let text = text_of(raw, pos, r)?;
                    if wanted {
                        st.text(&text);
                    }
                }
            }
            Token::CData(raw) => {
                if st.in_timestamp || st.in_region {
                    let text = std::str::from_utf8(raw).map_err(|e| {
                        r.schema(Location::Byte(pos), format!("CDATA is not UTF-8: {e}"))
                    })?;
                    st.text(text);
                }
            }
        }
    }
    st.builder();
    Ok(st.builder.take().expect("just built").finish())
}

/// An element name without its namespace prefix.
fn local_name(name: &[u8]) -> &[u8] {
    // Names are short: a plain loop beats a memchr call here.
    match name.iter().position(|&c| c == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

fn check_root(name: &[u8], pos: u64, r: &Rejector) -> Result<(), TransformError> {
    if name == b"ElectionResult" {
        Ok(())
    } else {
        Err(r.not_this_format(
            Location::Byte(pos),
            format!(
                "root element <{}>, expected <ElectionResult>",
                String::from_utf8_lossy(name)
            ),
        ))
    }
}

impl<'x> State<'_, 'x> {
    fn text(&mut self, s: &str) {
        if self.in_timestamp {
            self.timestamp.get_or_insert_with(String::new).push_str(s);
        } else if self.in_region {
            self.region.get_or_insert_with(String::new).push_str(s);
        }
    }

    fn builder(&mut self) -> &mut CellBuilder {
        if self.builder.is_none() {
            let ts = self.timestamp.as_deref().map(str::trim);
            let as_of = ts.and_then(|raw| parse_us_datetime(raw, None).map(|ms| (ms, raw)));
            let mut b = CellBuilder::new(self.ctx, self.ctx.mode, as_of, None);
            b.reserve(self.expected_rows);
            self.builder = Some(b);
        }
        self.builder.as_mut().expect("just set")
    }

    fn site_unit(&mut self) -> (u32, Text) {
        if let Some(u) = &self.site_unit {
            return u.clone();
        }
        let region = self.region.clone().unwrap_or_else(|| "site".into());
        let region = region.trim();
        let unit_type = match self.site_level {
            SiteLevel::State => UnitType::State,
            SiteLevel::County => UnitType::County,
        };
        let b = self.builder();
        let id = b.text(region);
        let u = b.unit(ReportingUnitRef {
            source_id: id.clone(),
            name: id.clone(),
            unit_type,
            type_raw: None,
            parent_source_id: None,
            fips: None,
        });
        self.site_unit = Some((u, id.clone()));
        (u, id)
    }

    fn path(&self) -> String {
        let mut p = String::from("/ElectionResult");
        if let Some(c) = &self.contest {
            p.push_str(&format!("/Contest[@key='{}']", c.key));
        }
        if let Some((_, key)) = &self.choice {
            p.push_str(&format!("/Choice[@key='{key}']"));
        }
        if let Some(vt) = &self.vote_type {
            p.push_str(&format!("/VoteType[@name='{}']", vt.raw));
        }
        p
    }

    /// The `votes` attribute; `element` names the element in errors only.
    fn votes(
        &self,
        a: &Attrs,
        element: impl Fn() -> String,
        r: &Rejector,
    ) -> Result<i64, TransformError> {
        let raw = a.votes.ok_or_else(|| {
            r.schema(
                Location::Path(format!("{}/{}", self.path(), element())),
                "missing votes attribute",
            )
        })?;
        parse_votes(raw).ok_or_else(|| {
            r.schema(
                Location::Path(format!("{}/{}", self.path(), element())),
                format!("votes={:?} is not an integer", String::from_utf8_lossy(raw)),
            )
        })
    }

    fn start(
        &mut self,
        name: &[u8],
        e: &RawAttrs<'x>,
        pos: u64,
        empty: bool,
        r: &Rejector,
    ) -> Result<(), TransformError> {
        match name {
            // The hot path first: 95% of the elements are leaves.
            leaf if (is(leaf, b"County") || is(leaf, b"Precinct"))
                && self.vote_type.is_some()
                && !self.in_turnout
                && !self.in_participating =>
            {
                self.start_leaf(is(leaf, b"County"), e, pos, r)?
            }
            b"Timestamp" if !empty => self.in_timestamp = true,
            b"Region" if !empty => self.in_region = true,
            b"VoterTurnout" | b"ElectionVoterTurnout" if !empty => self.in_turnout = true,
            b"ParticipatingCounties" if !empty => self.in_participating = true,
            b"Contest" => self.start_contest(e, pos, empty, r)?,
            b"County" if self.in_turnout || self.in_participating => self.start_reporting_county(e),
            b"Choice" => self.start_choice(e, pos, empty, r)?,
            b"VoteType" => self.start_vote_type(e, pos, empty, r)?,
            _ => {}
        }
        Ok(())
    }

    /// A `County` or `Precinct` count under the open VoteType: one cell.
    #[inline]
    fn start_leaf(
        &mut self,
        is_county: bool,
        e: &RawAttrs<'x>,
        pos: u64,
        r: &Rejector,
    ) -> Result<(), TransformError> {
        let element = if is_county { "County" } else { "Precinct" };
        let (name, votes) = leaf_attrs(e);
        let name = name
            .map(trim_bytes)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                r.schema(
                    Location::Path(format!("{}/{element}", self.path())),
                    "leaf without a name",
                )
            })?;
        let votes = votes.and_then(parse_votes).ok_or_else(|| {
            r.schema(
                Location::Path(format!(
                    "{}/{element}[@name='{}']",
                    self.path(),
                    String::from_utf8_lossy(name)
                )),
                format!(
                    "votes={:?} is missing or not an integer",
                    votes.map(String::from_utf8_lossy).unwrap_or_default()
                ),
            )
        })?;
        let (unit, precincts) = self.leaf_unit(name, is_county, pos, r)?;
        let (Some(contest), Some(vt)) = (self.contest.as_ref(), self.vote_type.as_ref()) else {
            return Err(r.schema(Location::Byte(pos), "a count outside a Contest's VoteType"));
        };
        let (contest, choice, label) = (contest.contest, vt.choice, vt.label);
        let b = self.builder.as_mut().expect("built");
        let row = b.push(contest, unit, choice, label, votes);
        row.precincts_reporting = precincts.0;
        row.precincts_total = precincts.1;
        Ok(())
    }

    /// A `Contest` opens: its key, name, kind, primary party and precincts.
    fn start_contest(
        &mut self,
        e: &RawAttrs<'x>,
        pos: u64,
        empty: bool,
        r: &Rejector,
    ) -> Result<(), TransformError> {
        if self.contest.is_some() {
            return Err(r.schema(
                Location::Path(self.path()),
                "a Contest inside another Contest",
            ));
        }
        let a = attrs(e);
        let key = opt_text(&a.key, pos, r)?;
        let key = key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| r.schema(Location::Byte(pos), "Contest without a key attribute"))?;
        let text = opt_text(&a.text, pos, r)?;
        let text = text.as_deref().unwrap_or(key);
        let kind = if a.is_question.map(trim_bytes) == Some(b"true") {
            ContestKind::BallotMeasure
        } else {
            ContestKind::Candidate
        };
        let primary_party = primary_party_suffix(text);
        let (reported, total) = match self.site_level {
            SiteLevel::State => (int(&a.precincts_reported), int(&a.precincts_participating)),
            SiteLevel::County => (
                int(&a.precincts_reported),
                int(&a.precincts_participating).or(int(&a.precincts_reporting)),
            ),
        };
        let b = self.builder();
        let key = b.text(key);
        let contest = ContestRef {
            source_id: key.clone(),
            name: b.text(text),
            kind,
            vote_for: int(&a.vote_for),
            primary_party: primary_party.map(|p| b.text(p)),
        };
        let contest = b.contest(contest);
        self.contest = Some(OpenContest {
            contest,
            key,
            precincts: (reported, total),
            participating: FxHashMap::default(),
            has_yes_no: false,
        });
        if empty {
            self.end_contest();
        }
        Ok(())
    }

    /// A `County` of the turnout table, or of the open contest's
    /// participating counties: its precincts reported and participating.
    fn start_reporting_county(&mut self, e: &RawAttrs<'x>) {
        let a = attrs(e);
        if let Some(name) = a.name {
            let name = trim_bytes(name);
            let p = (int(&a.precincts_reported), int(&a.precincts_participating));
            if self.in_participating {
                if let Some(c) = self.contest.as_mut() {
                    if c.participating.is_empty() {
                        c.participating.reserve(self.turnout_counties.len());
                    }
                    c.participating.insert(name, p);
                }
            } else {
                self.turnout_counties.insert(name, p);
            }
        }
    }

    /// A `Choice` of the open contest: its key, name, kind, party and
    /// incumbency.
    fn start_choice(
        &mut self,
        e: &RawAttrs<'x>,
        pos: u64,
        empty: bool,
        r: &Rejector,
    ) -> Result<(), TransformError> {
        if self.contest.is_none() {
            return Err(r.schema(Location::Byte(pos), "Choice outside a Contest"));
        }
        if self.choice.is_some() || self.vote_type.is_some() {
            return Err(r.schema(
                Location::Path(self.path()),
                "a Choice inside a Choice or VoteType",
            ));
        }
        let a = attrs(e);
        let key = opt_text(&a.key, pos, r)?;
        let key = key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                r.schema(
                    Location::Path(format!("{}/Choice", self.path())),
                    "Choice without a key attribute",
                )
            })?;
        let text = opt_text(&a.text, pos, r)?;
        let text = text.as_deref().unwrap_or(key);
        let party_attr = opt_text(&a.party, pos, r)?;
        let party_attr = party_attr
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty());
        let mut kind = choice_kind(text);
        if kind == ChoiceKind::Candidate {
            kind = match party_attr {
                Some("Y") if text.trim().eq_ignore_ascii_case("yes") => ChoiceKind::Yes,
                Some("N") if text.trim().eq_ignore_ascii_case("no") => ChoiceKind::No,
                _ => kind,
            };
        }
        let party = match party_attr {
            Some("NP") | None => party_in_name(text),
            Some("Y") | Some("N") if kind != ChoiceKind::Candidate => None,
            Some(p) => Some(p),
        };
        let b = self.builder();
        let key = b.text(key);
        let choice = ChoiceRef {
            source_id: key.clone(),
            name: b.text(text),
            kind,
            party: party.map(|p| b.text(p)),
            incumbent: incumbent_in_name(text),
        };
        let choice = b.choice(choice);
        if let Some(c) = self.contest.as_mut() {
            c.has_yes_no |= matches!(kind, ChoiceKind::Yes | ChoiceKind::No);
        }
        self.choice = Some((choice, key));
        if empty {
            self.choice = None;
        }
        Ok(())
    }

    /// A `VoteType` of the open choice (or of the contest: a pseudo
    /// choice), with its site-wide count.
    fn start_vote_type(
        &mut self,
        e: &RawAttrs<'x>,
        pos: u64,
        empty: bool,
        r: &Rejector,
    ) -> Result<(), TransformError> {
        if self.contest.is_none() {
            return Err(r.schema(Location::Byte(pos), "VoteType outside a Contest"));
        }
        if self.vote_type.is_some() {
            return Err(r.schema(
                Location::Path(self.path()),
                "a VoteType inside another VoteType",
            ));
        }
        let a = attrs(e);
        let name = opt_text(&a.name, pos, r)?
            .map(|n| n.trim().to_string())
            .unwrap_or_default();
        let votes = self.votes(&a, || format!("VoteType[@name='{name}']"), r)?;
        let (site, _) = self.site_unit();
        let open_choice = self.choice.as_ref().map(|(id, _)| *id);
        let normalized = match self.vote_types.get(&name) {
            Some(vt) => *vt,
            None => {
                let vt = normalize_vote_type(&name);
                self.vote_types.insert(name.clone(), vt);
                vt
            }
        };
        let b = self.builder();
        let raw = b.text(&name);
        let (choice, vote_type) = match open_choice {
            Some(ch) => (ch, normalized),
            // Contest-level Undervotes/Overvotes: a pseudo choice,
            // counted across every vote type.
            None => {
                let ch = b.choice(ChoiceRef {
                    source_id: raw.clone(),
                    name: raw.clone(),
                    kind: choice_kind(&name),
                    party: None,
                    incumbent: None,
                });
                (ch, VoteType::Total)
            }
        };
        let label = b.label(vote_type, &name);
        let contest = self.contest.as_ref().expect("checked");
        let (contest_id, precincts) = (contest.contest, contest.precincts);
        let b = self.builder.as_mut().expect("built");
        let row = b.push(contest_id, site, choice, label, votes);
        row.precincts_reporting = precincts.0;
        row.precincts_total = precincts.1;
        self.vote_type = Some(OpenVoteType { label, raw, choice });
        self.leaf_index = 0;
        if empty {
            self.vote_type = None;
        }
        Ok(())
    }

    /// The unit for a leaf name (raw attribute bytes) and its reporting in
    /// the open contest. Decoded and built on first sight only; the
    /// positional cache answers almost every call without hashing.
    fn leaf_unit(
        &mut self,
        raw_name: &'x [u8],
        is_county: bool,
        pos: u64,
        r: &Rejector,
    ) -> Result<(u32, Precincts), TransformError> {
        let i = self.leaf_index;
        self.leaf_index += 1;
        let contest = self.contest.as_ref().map_or(u32::MAX, |c| c.contest);
        if let Some(slot) = self.leaf_order.get(i)
            && *slot.raw_name == *raw_name
        {
            if let Some((c, county, p)) = slot.in_contest
                && c == contest
                && county == is_county
            {
                return Ok((slot.unit, p));
            }
            let (unit, turnout) = (slot.unit, slot.turnout);
            let p = self.contest_precincts(raw_name, is_county, turnout);
            self.leaf_order[i].in_contest = Some((contest, is_county, p));
            return Ok((unit, p));
        }
        let (unit, turnout) = match self.leaf_units.get(raw_name) {
            Some(hit) => *hit,
            None => {
                let name = text_of(raw_name, pos, r)?;
                let name = name.trim();
                let (_, site_id) = self.site_unit();
                let b = self.builder();
                let id = b.text(name);
                let u = b.unit(ReportingUnitRef {
                    source_id: id.clone(),
                    name: id,
                    unit_type: if is_county {
                        UnitType::County
                    } else if is_virtual_unit_name(name) {
                        UnitType::Virtual
                    } else {
                        UnitType::Precinct
                    },
                    type_raw: None,
                    parent_source_id: Some(site_id),
                    fips: None,
                });
                let turnout = self
                    .turnout_counties
                    .get(raw_name)
                    .copied()
                    .unwrap_or((None, None));
                self.leaf_units.insert(raw_name, (u, turnout));
                (u, turnout)
            }
        };
        let p = self.contest_precincts(raw_name, is_county, turnout);
        let slot = LeafSlot {
            raw_name,
            unit,
            turnout,
            in_contest: Some((contest, is_county, p)),
        };
        if i < self.leaf_order.len() {
            self.leaf_order[i] = slot;
        } else {
            self.leaf_order.push(slot);
        }
        Ok((unit, p))
    }

    /// A county's reporting in the open contest (`<ParticipatingCounties>`),
    /// else site-wide; precincts carry none.
    fn contest_precincts(&self, raw_name: &[u8], is_county: bool, turnout: Precincts) -> Precincts {
        if !is_county {
            return (None, None);
        }
        match self.contest.as_ref() {
            Some(c) if !c.participating.is_empty() => {
                c.participating.get(raw_name).copied().unwrap_or(turnout)
            }
            _ => turnout,
        }
    }

    fn end_contest(&mut self) {
        self.choice = None;
        self.vote_type = None;
        let Some(open) = self.contest.take() else {
            return;
        };
        let Some(b) = self.builder.as_mut() else {
            return;
        };
        let contest = b.contest_ref(open.contest);
        if open.has_yes_no && contest.kind == ContestKind::Candidate {
            let measure = ContestRef {
                kind: ContestKind::BallotMeasure,
                ..(**contest).clone()
            };
            b.replace_contest(open.contest, measure);
        }
    }
}
