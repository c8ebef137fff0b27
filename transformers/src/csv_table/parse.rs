//! Reading rows as byte records: identities are looked up by raw bytes in
//! FxHash maps, and text is decoded only when a new contest, unit or choice
//! is first seen, so a row costs no allocation beyond its cells.

use rustc_hash::FxHashMap;
use votewire_schemas::vote_type::normalize_vote_type;
use votewire_schemas::*;

use super::config::{CsvMapping, FinalNewline};
use crate::cells::{CellBuilder, CellTable, choice_kind, is_virtual_unit_name};
use crate::counts::{check_count, count_from_text};
use crate::error::{Location, Rejector, TransformError};
use crate::limits::looks_like_html;
use crate::payload::PayloadContext;

/// A header, normalized for matching: trimmed, lower-case, whitespace runs
/// (including Boulder's embedded newlines) collapsed.
fn norm(h: &str) -> String {
    h.trim_start_matches('\u{feff}')
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

struct Columns {
    county: Option<usize>,
    precinct: Option<usize>,
    contest: usize,
    district: Option<usize>,
    party: Option<usize>,
    choice: Option<usize>,
    /// (column, label id, raw label)
    votes: Vec<(usize, u32, Text)>,
}

fn find(headers: &[String], wanted: Option<&str>, defaults: &[&str]) -> Option<usize> {
    match wanted {
        Some(w) => {
            let w = norm(w);
            headers.iter().position(|h| *h == w)
        }
        None => defaults
            .iter()
            .find_map(|d| headers.iter().position(|h| h == d)),
    }
}

fn columns(
    raw: &csv::ByteRecord,
    m: &CsvMapping,
    b: &mut CellBuilder,
    r: &Rejector,
) -> Result<Columns, TransformError> {
    let mut display = Vec::with_capacity(raw.len());
    for (i, h) in raw.iter().enumerate() {
        let s = std::str::from_utf8(h).map_err(|_| {
            r.schema(
                Location::Line {
                    line: 1,
                    column: Some(i as u64 + 1),
                },
                "header is not UTF-8",
            )
        })?;
        display.push(s.trim_start_matches('\u{feff}').trim().to_string());
    }
    let headers: Vec<String> = display.iter().map(|h| norm(h)).collect();
    let need = |what: &str, col: Option<usize>| {
        col.ok_or_else(|| {
            r.not_this_format(
                Location::Line {
                    line: 1,
                    column: None,
                },
                format!(
                    "no {what} column in the header {display:?}; map it in the feed's [mapping]"
                ),
            )
        })
    };
    let contest = need(
        "office/contest",
        find(
            &headers,
            m.contest.as_deref(),
            &["office", "contest", "contest title", "race"],
        ),
    )?;
    let county = find(&headers, m.county.as_deref(), &["county", "county name"]);
    let precinct = find(
        &headers,
        m.precinct.as_deref(),
        &["precinct", "precinct name", "precinct code"],
    );
    let district = find(&headers, m.district.as_deref(), &["district"]);
    let party = find(&headers, m.party.as_deref(), &["party", "party name"]);
    let choice = find(
        &headers,
        m.choice.as_deref(),
        &["candidate", "choice", "choice name", "candidate name"],
    );
    let identity = [Some(contest), county, precinct, district, party, choice];
    let mut votes = Vec::new();
    match &m.vote_columns {
        Some(list) => {
            for want in list {
                let col = need(
                    &format!("vote column {want:?}"),
                    headers.iter().position(|h| *h == norm(want)),
                )?;
                let label = b.label(normalize_vote_type(&display[col]), &display[col]);
                votes.push((col, label, b.text(&display[col])));
            }
        }
        None => {
            for (i, h) in headers.iter().enumerate() {
                let vt = normalize_vote_type(h);
                if !identity.contains(&Some(i)) && vt != VoteType::Other {
                    let label = b.label(vt, &display[i]);
                    votes.push((i, label, b.text(&display[i])));
                }
            }
        }
    }
    if votes.is_empty() {
        return Err(r.not_this_format(
            Location::Line { line: 1, column: None },
            format!("no vote columns in the header {display:?}; list them as vote_columns in the feed's [mapping]"),
        ));
    }
    Ok(Columns {
        county,
        precinct,
        contest,
        district,
        party,
        choice,
        votes,
    })
}

fn trim(b: &[u8]) -> &[u8] {
    let s = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let e = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(s, |i| i + 1);
    &b[s..e]
}

/// The longest line accepted.
const MAX_LINE_BYTES: usize = 1024 * 1024;

const PSEUDO_OFFICES: [&str; 4] = [
    "registered voters",
    "ballots cast",
    "ballots cast blank",
    "total ballots",
];

pub(super) fn parse(
    bytes: &[u8],
    ctx: &PayloadContext,
    m: &CsvMapping,
    r: &Rejector,
) -> Result<CellTable, TransformError> {
    if looks_like_html(bytes) {
        return Err(r.not_this_format(Location::Byte(0), "an HTML page, not CSV"));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    // DOS-era writers end a file with Ctrl-Z (0x1A) after its last line
    // end: an end-of-file mark, not a cut row.
    let bytes = match bytes.iter().rposition(|&c| c != 0x1A) {
        Some(last) if last + 1 < bytes.len() => &bytes[..=last],
        _ => bytes,
    };
    let encoding = match m.encoding.as_deref() {
        Some(label) => encoding_rs::Encoding::for_label(label.as_bytes()).ok_or_else(|| {
            r.schema(
                Location::Whole,
                format!("unknown encoding {label:?} in the csv mapping"),
            )
        })?,
        None if std::str::from_utf8(bytes).is_ok() => encoding_rs::UTF_8,
        None => encoding_rs::WINDOWS_1252,
    };
    check_lines(bytes, m, r)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(m.delimiter.map_or(b',', |c| c as u8))
        .from_reader(bytes);
    let mut b = CellBuilder::new(ctx, ctx.mode, None, None);
    let mut rec = csv::ByteRecord::new();
    let csv_err = |e: csv::Error| {
        let line = e.position().map_or(0, |p| p.line());
        r.schema(
            Location::Line { line, column: None },
            format!("malformed CSV: {e}"),
        )
    };
    if !reader.read_byte_record(&mut rec).map_err(csv_err)? {
        return Err(r.truncated(Location::Whole, "no header row"));
    }
    let cols = columns(&rec, m, &mut b, r)?;
    let header_fields = rec.len();
    // The last non-blank row's line and field count: a short last row is a
    // cut file, whatever the line end says.
    let mut last_row: Option<(u64, usize)> = None;
    let mut seen = Identities::new(cols.precinct.is_some());
    // One row per vote column; estimate from the byte size.
    b.reserve(bytes.len() / 85);
    while reader.read_byte_record(&mut rec).map_err(csv_err)? {
        let line = rec.position().map_or(0, |p| p.line());
        if !(rec.len() == 1 && rec[0].trim_ascii().is_empty()) {
            last_row = Some((line, rec.len()));
        }
        let text = FieldText { encoding, r, line };
        seen.row(&mut b, &cols, &rec, &text)?;
    }
    if let Some((line, fields)) = last_row.filter(|&(_, n)| n < header_fields) {
        return Err(r.truncated(
            Location::Line { line, column: None },
            format!(
                "the last row has {fields} of the header's {header_fields} fields: the file was cut"
            ),
        ));
    }
    seen.mark_measures(&mut b);
    Ok(b.finish())
}

/// A line of a results file is a few hundred bytes; one of megabytes is an
/// attack on the reader's buffers (a 200 MB line once cost 2.1 GB). Lines
/// end at `\n`, `\r\n` or a lone `\r` (as the CSV reader reads them). A file
/// whose last row has no line end is refused when the mapping requires one.
fn check_lines(bytes: &[u8], m: &CsvMapping, r: &Rejector) -> Result<(), TransformError> {
    let mut line_start = 0usize;
    for end in memchr::memchr2_iter(b'\n', b'\r', bytes).chain(std::iter::once(bytes.len())) {
        if end - line_start > MAX_LINE_BYTES {
            let line = 1 + memchr::memchr_iter(b'\n', &bytes[..line_start]).count() as u64;
            return Err(r.limit(
                Location::Line { line, column: None },
                format!(
                    "a line of {} bytes; the limit is {MAX_LINE_BYTES}",
                    end - line_start
                ),
            ));
        }
        line_start = end + 1;
    }
    let ends_with_line_end = bytes.ends_with(b"\n") || bytes.ends_with(b"\r");
    if !ends_with_line_end && m.final_newline.unwrap_or_default() == FinalNewline::Required {
        let line = 1 + bytes.iter().filter(|&&c| c == b'\n').count() as u64;
        return Err(r.truncated(
            Location::Line { line, column: None },
            "the last row has no line end, so the file may have been cut while it was written \
             or sent (its last value could be the 3 of a 35); if this publisher never ends its \
             files with a newline, set final_newline = \"optional\" in the feed's [mapping]",
        ));
    }
    Ok(())
}

/// Decodes a row's fields, naming the line (and column) of one that is
/// not in the file's encoding.
struct FieldText<'a> {
    encoding: &'static encoding_rs::Encoding,
    r: &'a Rejector<'a>,
    line: u64,
}

impl FieldText<'_> {
    fn text(&self, b: &[u8], col: Option<usize>) -> Result<String, TransformError> {
        if self.encoding != encoding_rs::UTF_8 {
            return Ok(self.encoding.decode_without_bom_handling(b).0.into_owned());
        }
        std::str::from_utf8(b).map(str::to_string).map_err(|_| {
            self.r.schema(
                Location::Line {
                    line: self.line,
                    column: col.map(|c| c as u64 + 1),
                },
                "field is not UTF-8 (set encoding in the csv mapping if the file is not UTF-8)",
            )
        })
    }
}

/// The contests, units and choices seen so far, by their raw bytes.
struct Identities {
    /// contest -> (id, kind, display name)
    contests: FxHashMap<Box<[u8]>, (u32, ContestKind, Text)>,
    units: FxHashMap<Box<[u8]>, u32>,
    /// choice -> (id, kind)
    choices: FxHashMap<Box<[u8]>, (u32, ChoiceKind)>,
    key: Vec<u8>,
    /// contest id -> (has a Yes/No choice, has no candidate choice)
    measure_contests: FxHashMap<u32, (bool, bool)>,
    /// Units are precincts (under their county), not counties.
    unit_level_precinct: bool,
}

impl Identities {
    fn new(unit_level_precinct: bool) -> Identities {
        Identities {
            contests: FxHashMap::default(),
            units: FxHashMap::default(),
            choices: FxHashMap::default(),
            key: Vec::with_capacity(128),
            measure_contests: FxHashMap::default(),
            unit_level_precinct,
        }
    }

    /// One row: its contest, unit and choice (each decoded when first
    /// seen), then a cell per non-empty vote column.
    fn row(
        &mut self,
        b: &mut CellBuilder,
        cols: &Columns,
        rec: &csv::ByteRecord,
        text: &FieldText<'_>,
    ) -> Result<(), TransformError> {
        let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).map(trim).unwrap_or(b"");
        let office = get(Some(cols.contest));
        if office.is_empty() {
            return Ok(());
        }
        let (contest, contest_kind, contest_name) =
            self.contest(b, cols, text, office, get(cols.district))?;
        let unit = self.unit(b, cols, text, get(cols.county), get(cols.precinct))?;
        let (choice, choice_kind_) = self.choice(
            b,
            cols,
            text,
            &contest_name,
            get(cols.choice),
            get(cols.party),
        )?;
        if contest_kind == ContestKind::Candidate {
            let e = self
                .measure_contests
                .entry(contest)
                .or_insert((false, true));
            match choice_kind_ {
                ChoiceKind::Yes | ChoiceKind::No => e.0 = true,
                ChoiceKind::Candidate => e.1 = false,
                _ => {}
            }
        }
        for (col, label, raw) in &cols.votes {
            let v = rec.get(*col).map(trim).unwrap_or(b"");
            if v.is_empty() {
                continue;
            }
            let votes = count_from_text(v)
                .and_then(|n| check_count(n, false))
                .map_err(|problem| {
                    text.r.schema(
                        Location::Line {
                            line: text.line,
                            column: Some(*col as u64 + 1),
                        },
                        format!(
                            "{raw} = {:?} is {problem}",
                            String::from_utf8_lossy(&v[..v.len().min(64)])
                        ),
                    )
                })?;
            b.push(contest, unit, choice, *label, votes);
        }
        Ok(())
    }

    /// The contest `office` (in `district`): `office|district`.
    fn contest(
        &mut self,
        b: &mut CellBuilder,
        cols: &Columns,
        text: &FieldText<'_>,
        office: &[u8],
        district: &[u8],
    ) -> Result<(u32, ContestKind, Text), TransformError> {
        let key = &mut self.key;
        key.clear();
        key.extend_from_slice(office);
        if !district.is_empty() {
            key.push(b'|');
            key.extend_from_slice(district);
        }
        if let Some(c) = self.contests.get(&key[..]) {
            return Ok(c.clone());
        }
        let id = text.text(key, Some(cols.contest))?;
        let office_s = text.text(office, Some(cols.contest))?;
        let name = if district.is_empty() {
            office_s.clone()
        } else {
            format!("{office_s} {}", text.text(district, cols.district)?)
        };
        let kind = if PSEUDO_OFFICES.contains(&office_s.to_lowercase().as_str()) {
            ContestKind::Pseudo
        } else {
            ContestKind::Candidate
        };
        let name = b.text(&name);
        let c = ContestRef {
            source_id: b.text(&id),
            name: name.clone(),
            kind,
            vote_for: None,
            primary_party: None,
        };
        let entry = (b.contest(c), kind, name);
        self.contests.insert(key.as_slice().into(), entry.clone());
        Ok(entry)
    }

    /// The unit: the county, or `county|precinct` at precinct level.
    fn unit(
        &mut self,
        b: &mut CellBuilder,
        cols: &Columns,
        text: &FieldText<'_>,
        county: &[u8],
        precinct: &[u8],
    ) -> Result<u32, TransformError> {
        let key = &mut self.key;
        key.clear();
        key.extend_from_slice(county);
        if self.unit_level_precinct {
            key.push(b'|');
            key.extend_from_slice(precinct);
        }
        if let Some(u) = self.units.get(&key[..]) {
            return Ok(*u);
        }
        let id = text.text(key, cols.county)?;
        let county_s = text.text(county, cols.county)?;
        let u = if self.unit_level_precinct {
            let p = text.text(precinct, cols.precinct)?;
            ReportingUnitRef {
                source_id: b.text(&id),
                name: b.text(&p),
                unit_type: if is_virtual_unit_name(&p) {
                    UnitType::Virtual
                } else {
                    UnitType::Precinct
                },
                type_raw: None,
                parent_source_id: (!county_s.is_empty()).then(|| b.text(&county_s)),
                fips: None,
            }
        } else {
            ReportingUnitRef {
                source_id: b.text(&id),
                name: b.text(&county_s),
                unit_type: UnitType::County,
                type_raw: None,
                parent_source_id: None,
                fips: None,
            }
        };
        let u = b.unit(u);
        self.units.insert(key.as_slice().into(), u);
        Ok(u)
    }

    /// The choice `candidate|party`; a row naming no candidate (Registered
    /// Voters, Ballots Cast) is a choice named after its contest.
    fn choice(
        &mut self,
        b: &mut CellBuilder,
        cols: &Columns,
        text: &FieldText<'_>,
        contest_name: &Text,
        candidate: &[u8],
        party: &[u8],
    ) -> Result<(u32, ChoiceKind), TransformError> {
        let key = &mut self.key;
        key.clear();
        key.extend_from_slice(candidate);
        key.push(b'|');
        key.extend_from_slice(party);
        if let Some(c) = self.choices.get(&key[..]) {
            return Ok(*c);
        }
        let id = text.text(key, cols.choice)?;
        let cand = text.text(candidate, cols.choice)?;
        let (name, kind) = if cand.is_empty() {
            // Registered Voters / Ballots Cast rows name no candidate.
            let office_s = contest_name.to_string();
            let kind = choice_kind(&office_s);
            (
                office_s,
                if kind == ChoiceKind::Candidate {
                    ChoiceKind::Other
                } else {
                    kind
                },
            )
        } else {
            let k = choice_kind(&cand);
            (cand, k)
        };
        let party_s = text.text(party, cols.party)?;
        let c = ChoiceRef {
            source_id: b.text(&id),
            name: b.text(&name),
            kind,
            party: (!party_s.is_empty()).then(|| b.text(&party_s)),
            incumbent: None,
        };
        let entry = (b.choice(c), kind);
        self.choices.insert(key.as_slice().into(), entry);
        Ok(entry)
    }

    /// Contests whose only choices are Yes/No (plus pseudo rows) are
    /// measures.
    fn mark_measures(self, b: &mut CellBuilder) {
        for (contest, (yes_no, no_candidate)) in self.measure_contests {
            if yes_no && no_candidate {
                let measure = ContestRef {
                    kind: ContestKind::BallotMeasure,
                    ..(**b.contest_ref(contest)).clone()
                };
                b.replace_contest(contest, measure);
            }
        }
    }
}
