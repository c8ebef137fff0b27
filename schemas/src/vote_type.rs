//! Normalizing the ~25 vote-type labels seen in real feeds.
//!
//! The raw label is always kept beside the normalized [`VoteType`]; this only
//! decides which bucket it belongs to. Labels are compared case-insensitively
//! with punctuation and trailing numbers removed, so `advance_in_person_2`,
//! `Advance in Person` and `ADVANCE IN PERSON` are one label.

use crate::types::VoteType;

/// Maps a raw label to its normalized vote type.
pub fn normalize_vote_type(raw: &str) -> VoteType {
    let mut words = String::with_capacity(raw.len());
    for ch in raw.chars() {
        if ch.is_alphanumeric() {
            words.extend(ch.to_lowercase());
        } else if !words.ends_with(' ') && !words.is_empty() {
            words.push(' ');
        }
    }
    let mut label = words.trim_end();
    // "advance in person 3", "countinggroup 1" keep their meaning without the number
    // (but "counting group 1" is itself meaningful: Dominion's election-day group).
    if label == "countinggroup 1" || label == "counting group 1" {
        return VoteType::ElectionDay;
    }
    if label == "countinggroup 2" || label == "counting group 2" {
        return VoteType::Absentee;
    }
    while let Some(stripped) = label.strip_suffix(|c: char| c.is_ascii_digit()) {
        label = stripped.trim_end();
    }
    let has = |w: &str| label.split(' ').any(|x| x == w);
    if has("provisional") {
        VoteType::Provisional
    } else if has("absentee") || has("mail") || has("vbm") || label.contains("by mail") {
        VoteType::Absentee
    } else if has("early") || has("advance") || has("advanced") || label.contains("one stop") {
        VoteType::Early
    } else if label.contains("election day") || label.contains("electionday") || label == "eday" {
        VoteType::ElectionDay
    } else if matches!(
        label,
        "total" | "totals" | "votes" | "vote" | "total votes" | "total vote" | "all" | "count"
    ) {
        VoteType::Total
    } else {
        VoteType::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_seen_in_real_feeds_lands_in_its_bucket() {
        use VoteType::*;
        let seen = [
            ("Election Day Votes", ElectionDay),
            ("Election Day", ElectionDay),
            ("election_day", ElectionDay),
            ("election_day_votes", ElectionDay),
            ("election-day", ElectionDay),
            ("TC-Election Day Reporting", ElectionDay),
            ("CountingGroup 1", ElectionDay),
            ("Advanced Voting Votes", Early),
            ("Advance in Person", Early),
            ("advanced_votes", Early),
            ("advance_in_person_1", Early),
            ("advance_in_person_2", Early),
            ("advance_in_person_3", Early),
            ("Early Vote", Early),
            ("early_voting", Early),
            ("early", Early),
            ("Early", Early),
            ("Absentee by Mail Votes", Absentee),
            ("Absentee by Mail", Absentee),
            ("Absentee", Absentee),
            ("absentee_by_mail", Absentee),
            ("absentee_by_mail_votes", Absentee),
            ("mail", Absentee),
            ("Vote by Mail", Absentee),
            ("TC-VBM Reporting", Absentee),
            ("Mail Ballots C.D. 1", Absentee),
            ("Provisional Votes", Provisional),
            ("Provisional", Provisional),
            ("provisional_votes", Provisional),
            ("Total Votes", Total),
            ("total", Total),
            ("votes", Total),
            ("total_votes", Total),
            ("Undervotes", Other),
            ("Round 2 Votes", Other),
        ];
        for (raw, want) in seen {
            assert_eq!(normalize_vote_type(raw), want, "{raw:?}");
        }
    }
}
