//! A streaming pass over `detail.xml` with quick-xml: no DOM, no DTDs, no
//! entity expansion beyond the five predefined entities.

use rustc_hash::FxHashMap;
use std::borrow::Cow;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use votewire_schemas::*;

use super::config::{ClarityXmlConfig, SiteLevel};
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

struct OpenContest {
    contest: u32,
    key: Text,
    precincts: Precincts,
    /// Per-county reporting from `<ParticipatingCounties>`.
    participating: FxHashMap<Box<[u8]>, Precincts>,
    has_yes_no: bool,
}

/// One remembered leaf position.
struct LeafSlot {
    raw_name: Box<[u8]>,
    unit: u32,
    /// Site-wide turnout reporting for the unit.
    turnout: Precincts,
}

struct OpenVoteType {
    label: u32,
    raw: Text,
    choice: u32,
}

struct State<'c> {
    ctx: &'c PayloadContext,
    builder: Option<CellBuilder>,
    timestamp: Option<String>,
    region: Option<String>,
    in_timestamp: bool,
    in_region: bool,
    site_level: SiteLevel,
    /// The site's unit and its id (the parent of every leaf).
    site_unit: Option<(u32, Text)>,
    leaf_units: FxHashMap<Box<[u8]>, (u32, Precincts)>,
    /// Leaves in the order the previous VoteType listed them: every VoteType
    /// of a file lists the same units in the same order, so the i-th leaf is
    /// almost always the previous i-th leaf, found without hashing.
    leaf_order: Vec<LeafSlot>,
    leaf_index: usize,
    /// County reporting from the site-wide turnout section (state sites).
    turnout_counties: FxHashMap<Box<[u8]>, Precincts>,
    in_turnout: bool,
    contest: Option<OpenContest>,
    in_participating: bool,
    /// The open choice: its id and key.
    choice: Option<(u32, Text)>,
    vote_type: Option<OpenVoteType>,
    /// Expected rows (one per 75 bytes in real files), reserved up front.
    expected_rows: usize,
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
    };
    let mut reader = Reader::from_reader(xml);
    reader.config_mut().trim_text(true);
    let mut seen_root = false;
    let mut closed_root = false;
    loop {
        let pos = reader.buffer_position();
        let event = reader.read_event().map_err(|e| {
            let at = Location::Byte(reader.error_position());
            match e {
                quick_xml::Error::Syntax(s)
                    if format!("{s}").contains("end of") || format!("{s}").contains("unclosed") =>
                {
                    r.truncated(at, format!("XML ends early: {s}"))
                }
                other => r.schema(at, format!("malformed XML: {other}")),
            }
        })?;
        match event {
            Event::Eof => break,
            Event::DocType(_) => {
                return Err(r.schema(
                    Location::Byte(pos),
                    "DTDs are refused (no entity declarations, no external entities)",
                ));
            }
            Event::Start(e) => {
                if !seen_root {
                    check_root(&e, pos, r)?;
                    seen_root = true;
                    continue;
                }
                st.start(&e, pos, false, r)?;
            }
            Event::Empty(e) => {
                if !seen_root {
                    check_root(&e, pos, r)?;
                    return Err(r.truncated(Location::Byte(pos), "empty <ElectionResult/>"));
                }
                st.start(&e, pos, true, r)?;
            }
            Event::End(e) => match e.local_name().as_ref() {
                b"ElectionResult" => closed_root = true,
                b"Timestamp" => st.in_timestamp = false,
                b"Region" => st.in_region = false,
                b"VoterTurnout" | b"ElectionVoterTurnout" => st.in_turnout = false,
                b"ParticipatingCounties" => st.in_participating = false,
                b"Contest" => st.end_contest(),
                b"Choice" => st.choice = None,
                b"VoteType" => st.vote_type = None,
                _ => {}
            },
            Event::Text(t) => {
                let text = t.decode().map_err(|e| {
                    r.schema(Location::Byte(pos), format!("text is not UTF-8: {e}"))
                })?;
                st.text(&text);
            }
            Event::GeneralRef(g) => {
                let name = g
                    .decode()
                    .map_err(|e| r.schema(Location::Byte(pos), format!("entity name: {e}")))?;
                let resolved =
                    quick_xml::escape::resolve_predefined_entity(&name).ok_or_else(|| {
                        r.schema(
                            Location::Byte(pos),
                            format!("undeclared entity &{name}; (entities are not expanded)"),
                        )
                    })?;
                st.text(resolved);
            }
            _ => {}
        }
    }
    if !seen_root {
        return Err(r.not_this_format(Location::Byte(0), "no <ElectionResult> element"));
    }
    if !closed_root {
        return Err(r.truncated(
            Location::Byte(xml.len() as u64),
            "document ends before </ElectionResult>",
        ));
    }
    st.builder();
    Ok(st.builder.take().expect("just built").finish())
}

fn check_root(e: &BytesStart, pos: u64, r: &Rejector) -> Result<(), TransformError> {
    if e.local_name().as_ref() == b"ElectionResult" {
        Ok(())
    } else {
        Err(r.not_this_format(
            Location::Byte(pos),
            format!(
                "root element <{}>, expected <ElectionResult>",
                String::from_utf8_lossy(e.local_name().as_ref())
            ),
        ))
    }
}

/// The attributes of one element that this parser reads, as raw bytes: most
/// are compared or parsed as bytes, and only names that become new units or
/// choices are decoded.
#[derive(Default)]
struct Attrs<'a> {
    name: Option<Cow<'a, [u8]>>,
    key: Option<Cow<'a, [u8]>>,
    text: Option<Cow<'a, [u8]>>,
    votes: Option<Cow<'a, [u8]>>,
    party: Option<Cow<'a, [u8]>>,
    vote_for: Option<Cow<'a, [u8]>>,
    is_question: Option<Cow<'a, [u8]>>,
    precincts_reporting: Option<Cow<'a, [u8]>>,
    precincts_reported: Option<Cow<'a, [u8]>>,
    precincts_participating: Option<Cow<'a, [u8]>>,
}

/// A scanner over `key="value"` pairs of a start tag: faster than
/// quick-xml's checking iterator, and strict about what matters here (every
/// attribute has `=` and a quoted value). Values stay raw bytes.
struct AttrScan<'a> {
    bytes: &'a [u8],
    i: usize,
}

impl<'a> Iterator for AttrScan<'a> {
    /// `Err` carries what was malformed.
    type Item = Result<(&'a [u8], &'a [u8]), &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.bytes;
        let skip_ws = |i: &mut usize| {
            while *i < b.len() && b[*i].is_ascii_whitespace() {
                *i += 1;
            }
        };
        skip_ws(&mut self.i);
        if self.i >= b.len() || b[self.i] == b'/' {
            return None;
        }
        let key_start = self.i;
        while self.i < b.len() && b[self.i] != b'=' && !b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
        let key = &b[key_start..self.i];
        skip_ws(&mut self.i);
        if b.get(self.i) != Some(&b'=') {
            self.i = b.len();
            return Some(Err("missing ="));
        }
        self.i += 1;
        skip_ws(&mut self.i);
        let quote = match b.get(self.i) {
            Some(q @ (b'"' | b'\'')) => *q,
            _ => {
                self.i = b.len();
                return Some(Err("unquoted value"));
            }
        };
        let start = self.i + 1;
        let Some(len) = memchr::memchr(quote, &b[start..]) else {
            self.i = b.len();
            return Some(Err("unterminated value"));
        };
        self.i = start + len + 1;
        Some(Ok((key, &b[start..start + len])))
    }
}

fn scan<'a>(e: &'a BytesStart) -> AttrScan<'a> {
    AttrScan {
        bytes: e.attributes_raw(),
        i: 0,
    }
}

fn attrs<'a>(e: &'a BytesStart, pos: u64, r: &Rejector) -> Result<Attrs<'a>, TransformError> {
    let mut a = Attrs::default();
    for pair in scan(e) {
        let (key, value) = pair.map_err(|what| {
            r.schema(Location::Byte(pos), format!("malformed attribute: {what}"))
        })?;
        let slot = match key {
            b"name" => &mut a.name,
            b"key" => &mut a.key,
            b"text" => &mut a.text,
            b"votes" => &mut a.votes,
            b"party" => &mut a.party,
            b"voteFor" => &mut a.vote_for,
            b"isQuestion" => &mut a.is_question,
            b"precinctsReporting" => &mut a.precincts_reporting,
            b"precinctsReported" => &mut a.precincts_reported,
            b"precinctsParticipating" => &mut a.precincts_participating,
            _ => continue,
        };
        *slot = Some(Cow::Borrowed(value));
    }
    Ok(a)
}

/// A leaf's raw `name` and `votes`.
type LeafAttrs<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// The `name` and `votes` of a leaf element, the hot path.
fn leaf_attrs<'a>(e: &'a BytesStart) -> Result<LeafAttrs<'a>, &'static str> {
    let (mut name, mut votes) = (None, None);
    for pair in scan(e) {
        match pair? {
            (b"name", v) => name = Some(v),
            (b"votes", v) => votes = Some(v),
            _ => {}
        }
    }
    Ok((name, votes))
}

/// Decodes an attribute value: UTF-8, with the five predefined entities and
/// character references resolved. Anything else is refused.
fn text_of<'v>(v: &'v [u8], pos: u64, r: &Rejector) -> Result<Cow<'v, str>, TransformError> {
    let s = std::str::from_utf8(v)
        .map_err(|e| r.schema(Location::Byte(pos), format!("attribute is not UTF-8: {e}")))?;
    if memchr::memchr(b'&', v).is_none() {
        return Ok(Cow::Borrowed(s));
    }
    quick_xml::escape::unescape(s)
        .map(|c| Cow::Owned(c.into_owned()))
        .map_err(|e| r.schema(Location::Byte(pos), format!("attribute value: {e}")))
}

fn opt_text<'v>(
    v: &'v Option<Cow<'_, [u8]>>,
    pos: u64,
    r: &Rejector,
) -> Result<Option<Cow<'v, str>>, TransformError> {
    v.as_deref().map(|b| text_of(b, pos, r)).transpose()
}

/// Trims ASCII whitespace from both ends of a byte string.
fn trim_bytes(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &b[start..end]
}

fn int<T: std::str::FromStr>(v: &Option<Cow<[u8]>>) -> Option<T> {
    v.as_deref()
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.trim().parse().ok())
}

impl State<'_> {
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
        let raw = a.votes.as_deref().ok_or_else(|| {
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
        e: &BytesStart,
        pos: u64,
        empty: bool,
        r: &Rejector,
    ) -> Result<(), TransformError> {
        match e.local_name().as_ref() {
            b"Timestamp" if !empty => self.in_timestamp = true,
            b"Region" if !empty => self.in_region = true,
            b"VoterTurnout" | b"ElectionVoterTurnout" if !empty => self.in_turnout = true,
            b"ParticipatingCounties" if !empty => self.in_participating = true,
            b"Contest" => {
                if self.contest.is_some() {
                    return Err(r.schema(
                        Location::Path(self.path()),
                        "a Contest inside another Contest",
                    ));
                }
                let a = attrs(e, pos, r)?;
                let key = opt_text(&a.key, pos, r)?;
                let key = key
                    .as_deref()
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| {
                        r.schema(Location::Byte(pos), "Contest without a key attribute")
                    })?;
                let text = opt_text(&a.text, pos, r)?;
                let text = text.as_deref().unwrap_or(key);
                let kind = if a.is_question.as_deref().map(trim_bytes) == Some(b"true") {
                    ContestKind::BallotMeasure
                } else {
                    ContestKind::Candidate
                };
                let primary_party = primary_party_suffix(text);
                let (reported, total) = match self.site_level {
                    SiteLevel::State => {
                        (int(&a.precincts_reported), int(&a.precincts_participating))
                    }
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
            }
            b"County" if self.in_turnout || self.in_participating => {
                let a = attrs(e, pos, r)?;
                if let Some(name) = a.name.as_deref() {
                    let name: Box<[u8]> = trim_bytes(name).into();
                    let p = (int(&a.precincts_reported), int(&a.precincts_participating));
                    if self.in_participating {
                        if let Some(c) = self.contest.as_mut() {
                            c.participating.insert(name, p);
                        }
                    } else {
                        self.turnout_counties.insert(name, p);
                    }
                }
            }
            b"Choice" => {
                if self.contest.is_none() {
                    return Err(r.schema(Location::Byte(pos), "Choice outside a Contest"));
                }
                if self.choice.is_some() || self.vote_type.is_some() {
                    return Err(r.schema(
                        Location::Path(self.path()),
                        "a Choice inside a Choice or VoteType",
                    ));
                }
                let a = attrs(e, pos, r)?;
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
            }
            b"VoteType" => {
                if self.contest.is_none() {
                    return Err(r.schema(Location::Byte(pos), "VoteType outside a Contest"));
                }
                if self.vote_type.is_some() {
                    return Err(r.schema(
                        Location::Path(self.path()),
                        "a VoteType inside another VoteType",
                    ));
                }
                let a = attrs(e, pos, r)?;
                let name = opt_text(&a.name, pos, r)?
                    .map(|n| n.trim().to_string())
                    .unwrap_or_default();
                let votes = self.votes(&a, || format!("VoteType[@name='{name}']"), r)?;
                let (site, _) = self.site_unit();
                let open_choice = self.choice.as_ref().map(|(id, _)| *id);
                let b = self.builder();
                let raw = b.text(&name);
                let (choice, vote_type) = match open_choice {
                    Some(ch) => (ch, normalize_vote_type(&name)),
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
            }
            leaf @ (b"Precinct" | b"County") if self.vote_type.is_some() => {
                let is_county = leaf == b"County";
                let element = if is_county { "County" } else { "Precinct" };
                let (name, votes) = leaf_attrs(e).map_err(|what| {
                    r.schema(Location::Byte(pos), format!("malformed attribute: {what}"))
                })?;
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
                let (unit, turnout) = self.leaf_unit(name, is_county, pos, r)?;
                let precincts = self.contest_precincts(name, is_county, turnout);
                let (Some(contest), Some(vt)) = (self.contest.as_ref(), self.vote_type.as_ref())
                else {
                    return Err(
                        r.schema(Location::Byte(pos), "a count outside a Contest's VoteType")
                    );
                };
                let (contest, choice, label) = (contest.contest, vt.choice, vt.label);
                let b = self.builder.as_mut().expect("built");
                let row = b.push(contest, unit, choice, label, votes);
                row.precincts_reporting = precincts.0;
                row.precincts_total = precincts.1;
            }
            _ => {}
        }
        Ok(())
    }

    /// The unit for a leaf name (raw attribute bytes) and its site-wide
    /// turnout reporting. Decoded and built on first sight only; the
    /// positional cache answers almost every call without hashing.
    fn leaf_unit(
        &mut self,
        raw_name: &[u8],
        is_county: bool,
        pos: u64,
        r: &Rejector,
    ) -> Result<(u32, Precincts), TransformError> {
        let i = self.leaf_index;
        self.leaf_index += 1;
        if let Some(slot) = self.leaf_order.get(i)
            && *slot.raw_name == *raw_name
        {
            return Ok((slot.unit, slot.turnout));
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
                self.leaf_units.insert(raw_name.into(), (u, turnout));
                (u, turnout)
            }
        };
        let slot = LeafSlot {
            raw_name: raw_name.into(),
            unit,
            turnout,
        };
        if i < self.leaf_order.len() {
            self.leaf_order[i] = slot;
        } else {
            self.leaf_order.push(slot);
        }
        Ok((unit, turnout))
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

/// Primaries put the party after the office: `Governor - REP`.
fn primary_party_suffix(text: &str) -> Option<&str> {
    let (_, suffix) = text.rsplit_once(" - ")?;
    let suffix = suffix.trim();
    (suffix.len() <= 4 && suffix.chars().all(|c| c.is_ascii_uppercase())).then_some(suffix)
}

/// A signed decimal count parsed straight from attribute bytes: an optional
/// sign and digits, surrounding spaces allowed, nothing else, no overflow.
fn parse_votes(raw: &[u8]) -> Option<i64> {
    let s = trim_bytes(raw);
    let (neg, digits) = match s.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut n: i64 = 0;
    for d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(d - b'0');
    }
    Some(if neg { -n } else { n })
}
