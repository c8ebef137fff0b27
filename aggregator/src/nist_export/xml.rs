//! The report in the XML encoding (`application/xml`), in the v2
//! namespace.

use std::fmt::Write as _;

use votewire_schemas::ContestKind;
use votewire_schemas::nist::NAMESPACE;

use super::model::Model;
use super::{SCOPE_ID, election_date};

pub(super) fn xml_escape(s: &str) -> String {
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

pub(super) fn intl_xml(out: &mut String, element: &str, text: &str, indent: &str) {
    let _ = writeln!(
        out,
        "{indent}<{element}><Text Language=\"en\">{}</Text></{element}>",
        xml_escape(text)
    );
}

pub(super) fn to_xml(m: &Model, election_id: &str, generated: &str) -> String {
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
