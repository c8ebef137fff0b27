//! Reading the XML encodings with roxmltree (DTDs refused, so no entities).
//!
//! Two profiles share this reader: ERR v2 (the `1500-100/v2` namespace,
//! `ObjectId`, `ContestSelection`) and the v1-style shape that Google Civics
//! feeds use (no namespace, `*Collection` wrappers, lowercase `objectId`,
//! `BallotSelection`).

use roxmltree::{Document, Node, ParsingOptions};
use votewire_schemas::nist::NAMESPACE as NS;

use super::model::*;
use crate::counts::{check_count, count_from_text};
use crate::error::{Location, Rejector, TransformError};
use crate::limits::{looks_like_html, utf8};

const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// The most nodes (elements and text runs) a document may have. A node
/// costs roxmltree about 75 bytes beside the text (measured: 64 MB of
/// `<a/>` peaked at 370 MB under a 4 million limit, 1.2 GB under the old 50
/// million), so this keeps a refused document's tree near 150 MB and the
/// peak under four times the 64 MB default payload cap. Real reports have
/// one node per 20 to 30 bytes (the 257 KB Google Civics sample has 12
/// thousand), so a report of about 50 MB fits.
const MAX_XML_NODES: u32 = 2_000_000;

/// Which XML profile a family reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Profile {
    V2,
    V1,
}

pub(super) fn read(bytes: &[u8], r: &Rejector, profile: Profile) -> Result<Report, TransformError> {
    if looks_like_html(bytes) {
        return Err(r.not_this_format(Location::Byte(0), "an HTML page, not NIST ERR XML"));
    }
    let text = utf8(bytes, r)?;
    crate::nesting::check_xml_depth(text.as_bytes(), r)?;
    let opts = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_XML_NODES,
    };
    let doc = Document::parse_with_options(text, opts).map_err(|e| {
        let pos = e.pos();
        let at = Location::Line {
            line: pos.row as u64,
            column: Some(pos.col as u64),
        };
        match e {
            roxmltree::Error::DtdDetected => r.schema(
                at,
                "DTDs are refused (no entity declarations, no external entities)",
            ),
            roxmltree::Error::NodesLimitReached => r.limit(
                at,
                format!("more than {MAX_XML_NODES} XML nodes; no results report has that many"),
            ),
            roxmltree::Error::UnexpectedEndOfStream | roxmltree::Error::UnclosedRootNode => {
                r.truncated(at, format!("XML ends early: {e}"))
            }
            other if other.to_string().contains("end of stream") => {
                r.truncated(at, format!("XML ends early: {other}"))
            }
            other => r.schema(at, format!("malformed XML: {other}")),
        }
    })?;
    let root = doc.root_element();
    let namespace_ok = match profile {
        Profile::V2 => root.tag_name().namespace() == Some(NS),
        Profile::V1 => root.tag_name().namespace() != Some(NS),
    };
    if root.tag_name().name() != "ElectionReport" || !namespace_ok {
        return Err(r.not_this_format(
            Location::Path(format!("/{}", root.tag_name().name())),
            format!(
                "root <{}> in namespace {:?}, expected ElectionReport {} ({profile:?} profile)",
                root.tag_name().name(),
                root.tag_name().namespace(),
                match profile {
                    Profile::V2 => format!("in {NS}"),
                    Profile::V1 => "without the v2 namespace".to_string(),
                }
            ),
        ));
    }
    let mut report = Report {
        generated_date: child_text(root, "GeneratedDate"),
        status: child_text(root, "Status"),
        is_test: child_text(root, "IsTest").as_deref() == Some("true"),
        ..Report::default()
    };
    let seq = |n: &'static str| child_text(root, n).and_then(|s| s.parse::<i64>().ok());
    if let (Some(s), Some(e)) = (seq("SequenceStart"), seq("SequenceEnd")) {
        report.sequence = Some((s, e));
    }
    for g in children(root, "GpUnit") {
        let id = object_id(g, r)?;
        report.gp_units.insert(
            id,
            GpUnit {
                name: child(g, "Name").map(intl_text),
                unit_type: child_text(g, "Type").unwrap_or_default(),
                other_type: child_text(g, "OtherType"),
                composing: idrefs(g, "ComposingGpUnitIds"),
                subunits_reported: child_text(g, "SubUnitsReported").and_then(|s| s.parse().ok()),
                total_subunits: child_text(g, "TotalSubUnits").and_then(|s| s.parse().ok()),
            },
        );
    }
    for p in children(root, "Party") {
        report.parties.insert(
            object_id(p, r)?,
            Party {
                name: child(p, "Name").map(intl_text),
                abbreviation: child_text(p, "Abbreviation"),
            },
        );
    }
    for (ei, election) in children(root, "Election").enumerate() {
        for c in children(election, "Candidate") {
            report.candidates.insert(
                object_id(c, r)?,
                Candidate {
                    ballot_name: child(c, "BallotName").map(intl_text),
                    party_id: child_text(c, "PartyId").map(|s| collapse_id(&s)),
                },
            );
        }
        for (ci, c) in children(election, "Contest").enumerate() {
            let id = object_id(c, r)?;
            let location = format!("/ElectionReport/Election[{}]/Contest[{}]", ei + 1, ci + 1);
            let mut contest = Contest {
                kind: xsi_type(c),
                name: child_text(c, "Name").unwrap_or_else(|| id.clone()),
                votes_allowed: child_text(c, "VotesAllowed").and_then(|s| s.parse().ok()),
                primary_party_ids: idrefs(c, "PrimaryPartyIds"),
                id,
                location,
                ..Contest::default()
            };
            for s in children(c, "ContestSelection").chain(children(c, "BallotSelection")) {
                let mut sel = Selection {
                    id: object_id(s, r)?,
                    kind: xsi_type(s),
                    candidate_ids: idrefs(s, "CandidateIds"),
                    party_ids: idrefs(s, "PartyIds"),
                    selection_text: child(s, "Selection").map(intl_text),
                    is_write_in: child_text(s, "IsWriteIn").as_deref() == Some("true"),
                    counts: Vec::new(),
                };
                for v in children(s, "VoteCounts") {
                    let raw = child_text(v, "Count").unwrap_or_default();
                    let count = count_from_text(raw.as_bytes())
                        .and_then(|n| check_count(n, false))
                        .map_err(|problem| {
                            r.schema(
                                Location::Path(format!(
                                    "{}/ContestSelection[@ObjectId='{}']/VoteCounts/Count",
                                    contest.location, sel.id
                                )),
                                format!("Count {raw:?} is {problem}"),
                            )
                        })?;
                    sel.counts.push(Count {
                        gp_unit_id: child_text(v, "GpUnitId")
                            .map(|s| collapse_id(&s))
                            .unwrap_or_default(),
                        count_type: child_text(v, "Type").unwrap_or_else(|| "total".into()),
                        other_type: child_text(v, "OtherType"),
                        count,
                    });
                }
                contest.selections.push(sel);
            }
            report.contests.push(contest);
        }
    }
    Ok(report)
}

/// Child elements called `name`, looking through a `<nameCollection>`
/// wrapper (v1 profile) as well.
fn children<'a, 'i>(n: Node<'a, 'i>, name: &'static str) -> impl Iterator<Item = Node<'a, 'i>> {
    n.children().filter(|c| c.is_element()).flat_map(move |c| {
        let tag = c.tag_name().name();
        let direct = (tag == name).then_some(c);
        let wrapped = tag
            .strip_suffix("Collection")
            .filter(|inner| *inner == name)
            .map(|_| {
                c.children()
                    .filter(move |g| g.is_element() && g.tag_name().name() == name)
            });
        direct.into_iter().chain(wrapped.into_iter().flatten())
    })
}

fn child<'a, 'i>(n: Node<'a, 'i>, name: &'static str) -> Option<Node<'a, 'i>> {
    children(n, name).next()
}

fn child_text(n: Node, name: &'static str) -> Option<String> {
    child(n, name).and_then(|c| c.text()).map(display_text)
}

/// Element text for display: pretty-printing (text spanning lines) is
/// trimmed and collapsed; single-line text is kept exactly, trailing spaces
/// included (Cambridge's `Precinct 1-1 `).
fn display_text(s: &str) -> String {
    if s.contains('\n') {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        s.to_string()
    }
}

/// `<Name><Text Language="en">…</Text></Name>` or plain text; English first.
fn intl_text(n: Node) -> String {
    let texts: Vec<Node> = children(n, "Text").collect();
    let pick = texts
        .iter()
        .find(|t| t.attribute("Language").or(t.attribute("language")) == Some("en"))
        .or_else(|| texts.first());
    match pick {
        Some(t) => display_text(t.text().unwrap_or("")),
        None => display_text(n.text().unwrap_or("")),
    }
}

/// An IDREFS element: whitespace-separated ids.
fn idrefs(n: Node, name: &'static str) -> Vec<String> {
    children(n, name)
        .flat_map(|c| {
            c.text()
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn object_id(n: Node, r: &Rejector) -> Result<String, TransformError> {
    n.attribute("ObjectId")
        .or(n.attribute("objectId"))
        .map(collapse_id)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            let pos = n.document().text_pos_at(n.range().start);
            r.schema(
                Location::Line {
                    line: pos.row as u64,
                    column: Some(pos.col as u64),
                },
                format!("<{}> without an ObjectId", n.tag_name().name()),
            )
        })
}

fn xsi_type(n: Node) -> String {
    let t = n.attribute((XSI, "type")).unwrap_or("");
    t.rsplit(':').next().unwrap_or(t).to_string()
}
