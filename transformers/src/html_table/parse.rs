//! Reading result tables out of an HTML page.

use std::collections::HashMap;

use scraper::{ElementRef, Html, Selector};
use votewire_schemas::vote_type::normalize_vote_type;
use votewire_schemas::*;

use super::config::{HtmlLayout, HtmlMapping};
use crate::cells::{CellBuilder, CellTable, choice_kind};
use crate::error::{Location, Rejector, TransformError};
use crate::payload::PayloadContext;
use crate::timefmt::{SourceZone, parse_us_datetime};

/// Decodes the page: BOM, then the HTTP charset, then `<meta>`, then UTF-8 if
/// valid, else windows-1252.
pub(super) fn decode(bytes: &[u8], content_type: Option<&str>) -> String {
    if let Some((enc, bom_len)) = encoding_rs::Encoding::for_bom(bytes) {
        return enc
            .decode_without_bom_handling(&bytes[bom_len..])
            .0
            .into_owned();
    }
    let label_of = |s: &str| {
        let lower = s.to_ascii_lowercase();
        let i = lower.find("charset=")?;
        let rest = &s[i + 8..];
        let label: String = rest
            .trim_start_matches(['"', '\''])
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        encoding_rs::Encoding::for_label(label.as_bytes())
    };
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).into_owned();
    let declared = content_type.and_then(label_of).or_else(|| {
        let lower = head.to_ascii_lowercase();
        lower.find("<meta").and_then(|_| {
            lower
                .match_indices("<meta")
                .filter_map(|(i, _)| {
                    let end = lower[i..].find('>').map_or(lower.len(), |e| i + e);
                    label_of(&head[i..end])
                })
                .next()
        })
    });
    let enc = match declared {
        Some(e) => e,
        None if std::str::from_utf8(bytes).is_ok() => encoding_rs::UTF_8,
        None => encoding_rs::WINDOWS_1252,
    };
    enc.decode_without_bom_handling(bytes).0.into_owned()
}

/// Text of an element: whitespace (and `&nbsp;`) collapsed, trimmed.
fn text(el: &ElementRef) -> String {
    el.text()
        .collect::<String>()
        .replace('\u{a0}', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

struct Cell {
    text: String,
    is_header: bool,
    href: Option<String>,
}

/// One row: cells placed at their column positions, colspans expanded.
struct Row {
    cells: HashMap<usize, Cell>,
}

impl Row {
    fn text(&self, pos: usize) -> &str {
        self.cells.get(&pos).map_or("", |c| c.text.as_str())
    }

    fn all_header(&self) -> bool {
        !self.cells.is_empty() && self.cells.values().all(|c| c.is_header)
    }
}

fn rows(table: ElementRef) -> Vec<Row> {
    let tr = Selector::parse("tr").expect("static selector");
    let a = Selector::parse("a").expect("static selector");
    table
        .select(&tr)
        .map(|row| {
            let mut cells = HashMap::new();
            let mut pos = 0;
            for c in row.child_elements() {
                let name = c.value().name();
                if name != "td" && name != "th" {
                    continue;
                }
                let span: usize = c
                    .value()
                    .attr("colspan")
                    .and_then(|s| s.trim().parse().ok())
                    .filter(|n| (1..=50).contains(n))
                    .unwrap_or(1);
                cells.insert(
                    pos,
                    Cell {
                        text: text(&c),
                        is_header: name == "th",
                        href: c
                            .select(&a)
                            .next()
                            .and_then(|l| l.value().attr("href"))
                            .map(str::to_string),
                    },
                );
                pos += span;
            }
            Row { cells }
        })
        .collect()
}

fn selector(s: &str, what: &str, r: &Rejector) -> Result<Selector, TransformError> {
    Selector::parse(s).map_err(|e| {
        r.schema(
            Location::Whole,
            format!("invalid {what} selector {s:?}: {e}"),
        )
    })
}

/// `114,925` -> 114925; placeholders and blanks -> None; junk -> Err.
fn count(s: &str) -> Result<Option<i64>, ()> {
    let t = s.trim();
    if t.is_empty() || t.chars().all(|c| c == '.' || c == '-') {
        return Ok(None);
    }
    crate::counts::count_from_text(t.as_bytes())
        .and_then(|n| crate::counts::check_count(n, false))
        .map(Some)
        .map_err(|_| ())
}

/// The first `M/D/YYYY h:mm[:ss] [AM|PM]` in a text.
fn find_us_datetime(s: &str, zone: Option<&SourceZone>) -> Option<(i64, String)> {
    let words: Vec<&str> = s.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        let w = w.trim_start_matches(|c: char| !c.is_ascii_digit());
        if w.matches('/').count() == 2 {
            let candidate = words[i..words.len().min(i + 3)].join(" ");
            let candidate = candidate.replacen(words[i], w, 1);
            if let Some(ms) = parse_us_datetime(&candidate, zone) {
                return Some((ms, candidate));
            }
        }
    }
    None
}

pub(super) fn parse(
    page: &str,
    ctx: &PayloadContext,
    m: &HtmlMapping,
    r: &Rejector,
) -> Result<CellTable, TransformError> {
    crate::nesting::check_html_depth(page.as_bytes(), r)?;
    let doc = Html::parse_document(page);
    let as_of = match &m.as_of {
        Some(sel) => {
            let sel = selector(sel, "as_of", r)?;
            doc.select(&sel)
                .find_map(|e| find_us_datetime(&text(&e), m.time_zone.as_ref()))
        }
        None => None,
    };
    let mut b = CellBuilder::new(
        ctx,
        ctx.mode,
        as_of.as_ref().map(|(ms, raw)| (*ms, raw.as_str())),
        None,
    );
    let table_sel = selector(&m.table, "table", r)?;
    let tables: Vec<ElementRef> = doc.select(&table_sel).collect();
    if tables.is_empty() {
        return Err(r.not_this_format(
            Location::Whole,
            format!("no element matches the table selector {:?}", m.table),
        ));
    }
    match m.layout {
        HtmlLayout::UnitRows => unit_rows(&doc, &tables, m, &mut b, r)?,
        HtmlLayout::CandidateRows => candidate_rows(&tables, m, &mut b, r)?,
    }
    Ok(b.finish())
}

fn bad_count(table: usize, row: usize, pos: usize, value: &str, r: &Rejector) -> TransformError {
    r.schema(
        Location::Path(format!(
            "table[{}]/tr[{}]/td[{}]",
            table + 1,
            row + 1,
            pos + 1
        )),
        format!(
            "{:?} is not a count (a whole number from 0 to 1,000,000,000)",
            &value[..value.floor_char_boundary(64)]
        ),
    )
}

fn unit_rows(
    doc: &Html,
    tables: &[ElementRef],
    m: &HtmlMapping,
    b: &mut CellBuilder,
    r: &Rejector,
) -> Result<(), TransformError> {
    let contest_name = unit_rows_contest(doc, m, r)?;
    let name = b.text(&contest_name);
    let contest = b.contest(ContestRef {
        source_id: name.clone(),
        name,
        kind: ContestKind::Candidate,
        vote_for: None,
        primary_party: None,
    });
    let placeholder = m.placeholder.as_deref().unwrap_or("");
    let unit_type = match m.unit_type.as_deref() {
        None | Some("county") => UnitType::County,
        Some("precinct") => UnitType::Precinct,
        Some("municipality") => UnitType::Municipality,
        Some(_) => UnitType::Other,
    };
    let row_raw = m.row_vote_type.as_deref().unwrap_or("total");
    let row_label = b.label(normalize_vote_type(row_raw), row_raw);
    for (ti, table) in tables.iter().enumerate() {
        let rows = rows(*table);
        let headers: Vec<&Row> = rows.iter().take_while(|row| row.all_header()).collect();
        if headers.is_empty() {
            continue;
        }
        let width = headers
            .iter()
            .flat_map(|h| h.cells.keys())
            .max()
            .map_or(0, |w| w + 1);
        let join = |rows: &[&Row], pos: usize| {
            rows.iter()
                .map(|h| h.text(pos))
                .filter(|t| !t.is_empty() && *t != placeholder)
                .collect::<Vec<_>>()
                .join(" ")
        };
        let name_rows = &headers[..m.name_header_rows.min(headers.len())];
        let mut candidates = Vec::new();
        let mut roles: HashMap<usize, &str> = HashMap::new();
        for pos in 1..width {
            let label = join(&headers, pos);
            if let Some((_, role)) = m.columns.iter().find(|(k, _)| **k == label) {
                roles.insert(pos, role.as_str());
                continue;
            }
            let name = join(name_rows, pos);
            if name.is_empty() {
                continue;
            }
            let party = m
                .party_header_row
                .and_then(|i| headers.get(i))
                .map(|h| h.text(pos))
                .filter(|p| !p.is_empty() && *p != placeholder);
            let incumbent = name.contains("(Incumbent)").then_some(true);
            let text = b.text(&name);
            let choice = ChoiceRef {
                source_id: text.clone(),
                name: text,
                kind: choice_kind(&name),
                party: party.map(|p| b.text(p)),
                incumbent,
            };
            candidates.push((pos, b.choice(choice)));
        }
        if candidates.is_empty() {
            return Err(r.not_this_format(
                Location::Path(format!("table[{}]", ti + 1)),
                "no candidate columns under the header rows",
            ));
        }
        let aggregate = m.aggregate_unit.as_deref();
        let mut current: Option<u32> = None;
        for (ri, row) in rows.iter().enumerate().skip(headers.len()) {
            let label = row.text(0);
            if label.is_empty() {
                continue;
            }
            let (unit, row_label) = if let Some(sub) = m.subrows.get(label) {
                let Some(u) = current else { continue };
                (u, b.label(normalize_vote_type(sub), sub))
            } else {
                let is_aggregate = Some(label) == aggregate;
                let u = ReportingUnitRef {
                    source_id: b.text(label),
                    name: b.text(label),
                    unit_type: if is_aggregate {
                        UnitType::State
                    } else {
                        unit_type
                    },
                    type_raw: None,
                    parent_source_id: if is_aggregate {
                        None
                    } else {
                        aggregate.map(|a| b.text(a))
                    },
                    fips: None,
                };
                let u = b.unit(u);
                current = Some(u);
                (u, row_label)
            };
            let mut reporting = None;
            let mut total = None;
            for (pos, role) in &roles {
                let slot = match *role {
                    "precincts_reporting" => &mut reporting,
                    "precincts_total" => &mut total,
                    _ => continue,
                };
                let v = count(row.text(*pos))
                    .map_err(|_| bad_count(ti, ri, *pos, row.text(*pos), r))?;
                *slot = v.map(|n| n as i32);
            }
            for (pos, choice) in &candidates {
                let Some(votes) = count(row.text(*pos))
                    .map_err(|_| bad_count(ti, ri, *pos, row.text(*pos), r))?
                else {
                    continue;
                };
                let row = b.push(contest, unit, *choice, row_label, votes);
                row.precincts_reporting = reporting;
                row.precincts_total = total;
            }
        }
    }
    Ok(())
}

/// The one contest a unit-rows page reports: the `contest_name_index`-th match
/// of the `contest_name` selector, or the mapping's literal `contest`.
fn unit_rows_contest(doc: &Html, m: &HtmlMapping, r: &Rejector) -> Result<String, TransformError> {
    let name = match (&m.contest_name, &m.contest) {
        (Some(sel), _) => {
            let sel = selector(sel, "contest_name", r)?;
            doc.select(&sel)
                .map(|e| text(&e))
                .nth(m.contest_name_index)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| r.not_this_format(Location::Whole, "no contest name on the page"))?
        }
        (None, Some(literal)) => literal.clone(),
        (None, None) => {
            return Err(r.schema(
                Location::Whole,
                "unit-rows needs contest_name (a selector) or contest",
            ));
        }
    };
    Ok(name)
}

fn candidate_rows(
    tables: &[ElementRef],
    m: &HtmlMapping,
    b: &mut CellBuilder,
    r: &Rejector,
) -> Result<(), TransformError> {
    let name_header = m
        .name_header
        .as_deref()
        .ok_or_else(|| r.schema(Location::Whole, "candidate-rows needs name_header"))?;
    let unit_id = m.unit_id.as_deref().unwrap_or("state");
    let unit = ReportingUnitRef {
        source_id: b.text(unit_id),
        name: b.text(m.unit_name.as_deref().unwrap_or(unit_id)),
        unit_type: UnitType::State,
        type_raw: None,
        parent_source_id: None,
        fips: None,
    };
    let unit = b.unit(unit);
    for (ti, table) in tables.iter().enumerate() {
        let rows = rows(*table);
        let Some(header) = rows
            .iter()
            .find(|row| row.all_header() && row.cells.values().any(|c| c.text == name_header))
        else {
            continue;
        };
        let pos_of = |label: &str| {
            header
                .cells
                .iter()
                .find(|(_, c)| c.text == label)
                .map(|(p, _)| *p)
        };
        let name_pos = pos_of(name_header).expect("found above");
        let party_pos = m.party_header.as_deref().and_then(pos_of);
        let mut vote_cols = Vec::new();
        for (label, raw) in &m.vote_headers {
            if let Some(p) = pos_of(label) {
                vote_cols.push((p, b.label(normalize_vote_type(raw), raw)));
            }
        }
        if vote_cols.is_empty() {
            return Err(r.not_this_format(
                Location::Path(format!("table[{}]", ti + 1)),
                "none of the mapped vote headers is in the table",
            ));
        }
        let mut contest: Option<(u32, usize)> = None;
        for (ri, row) in rows.iter().enumerate() {
            if row.all_header() {
                continue;
            }
            if let Some(label) = m.precincts_label.as_deref()
                && let Some((&p, _)) = row.cells.iter().find(|(_, c)| c.text == label)
            {
                let mut numbers = row
                    .cells
                    .iter()
                    .filter(|(q, _)| **q > p)
                    .collect::<Vec<_>>();
                numbers.sort_by_key(|(q, _)| **q);
                let mut found = numbers.iter().filter_map(|(_, c)| {
                    let first = c.text.split_whitespace().next().unwrap_or("");
                    count(first).ok().flatten()
                });
                let (rep, tot) = (found.next(), found.next());
                if let Some((_, start)) = &contest {
                    for row in &mut b.rows_mut()[*start..] {
                        row.precincts_reporting = rep.map(|n| n as i32);
                        row.precincts_total = tot.map(|n| n as i32);
                    }
                }
                continue;
            }
            let first = row.text(0);
            // A race row names the race; `-----` separator rows do not.
            if first.chars().any(char::is_alphanumeric) {
                let id = row
                    .cells
                    .get(&0)
                    .and_then(|c| c.href.clone())
                    .unwrap_or_else(|| first.to_string());
                let c = ContestRef {
                    source_id: b.text(&id),
                    name: b.text(first),
                    kind: ContestKind::Candidate,
                    vote_for: None,
                    primary_party: None,
                };
                contest = Some((b.contest(c), b.len()));
                continue;
            }
            let name = row.text(name_pos);
            let Some((c, _)) = contest else { continue };
            if name.is_empty() {
                continue;
            }
            let party = party_pos.map(|p| row.text(p)).filter(|p| !p.is_empty());
            let incumbent = (name.contains("- Incumbent") || name.contains("(I)")).then_some(true);
            let text = b.text(name);
            let choice = ChoiceRef {
                source_id: text.clone(),
                name: text,
                kind: choice_kind(name),
                party: party.map(|p| b.text(p)),
                incumbent,
            };
            let choice = b.choice(choice);
            for (p, label) in &vote_cols {
                let Some(votes) =
                    count(row.text(*p)).map_err(|_| bad_count(ti, ri, *p, row.text(*p), r))?
                else {
                    continue;
                };
                b.push(c, unit, choice, *label, votes);
            }
        }
    }
    Ok(())
}
