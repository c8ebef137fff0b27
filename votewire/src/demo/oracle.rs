//! The independent computation the demo's results are checked against:
//! the final snapshots read by plain means (JSON walked by hand, the CSV
//! split on commas, the Texas page's ALL COUNTIES row scanned), never
//! through the transformers under test.

use std::collections::BTreeMap;

use anyhow::Context;

use super::night::{Night, Snapshot};
use super::{AP_FEED, CLARITY_FEED, CSV_FEED, TX_FEED};

/// One (source, race) at statewide level: the contract's `races` entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(super) struct Race {
    pub(super) source_feed_id: String,
    pub(super) contest_source_id: String,
    pub(super) unit: String,
    pub(super) choices: Vec<Choice>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(super) struct Choice {
    pub(super) choice_source_id: String,
    pub(super) choice_name: String,
    pub(super) votes: i64,
}

/// The statewide results an independent reading of the final snapshots
/// gives: the Clarity counties summed per contest and choice position, and
/// AP's statewide summary per race.
pub(super) fn independent(night: &Night, companions: &Companions) -> anyhow::Result<Vec<Race>> {
    let last_json = |series: &[Snapshot]| -> anyhow::Result<serde_json::Value> {
        let s = series
            .iter()
            .rev()
            .find(|s| s.is_json)
            .context("a series without a JSON snapshot")?;
        serde_json::from_slice(&s.bytes).context("the final snapshot is not JSON")
    };
    let mut races = Vec::new();
    let clarity = last_json(&night.clarity)?;
    let mut sums: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for area in clarity["Contests"].as_array().context("Contests")? {
        if area["A"].as_str().map(str::trim) == Some("-1") {
            continue; // the statewide row, when a snapshot has one, is not a county
        }
        let contests = area["C"].as_array().context("C")?;
        for (i, c) in contests.iter().enumerate() {
            let key = c.as_str().context("a contest id")?.trim().to_string();
            let votes = area["V"][i].as_array().context("V")?;
            let sum = sums.entry(key).or_insert_with(|| vec![0; votes.len()]);
            for (j, v) in votes.iter().enumerate() {
                sum[j] += v.as_i64().context("a count")?;
            }
        }
    }
    for (contest, votes) in sums {
        races.push(Race {
            source_feed_id: CLARITY_FEED.into(),
            contest_source_id: contest.clone(),
            unit: "state".into(),
            choices: votes
                .iter()
                .enumerate()
                .map(|(j, v)| Choice {
                    choice_source_id: j.to_string(),
                    choice_name: companions.clarity_choice(&contest, j),
                    votes: *v,
                })
                .collect(),
        });
    }
    let ap = last_json(&night.ap)?;
    for race in ap["results"].as_array().context("results")? {
        let id = race["raceID"].as_str().context("raceID")?.to_string();
        let mut choices: Vec<Choice> = race["summary"]["results"]
            .as_array()
            .context("summary.results")?
            .iter()
            .map(|c| {
                let cid = c["candidateID"].as_str().unwrap_or_default().to_string();
                Choice {
                    choice_name: companions.ap_candidate(&cid),
                    choice_source_id: cid,
                    votes: c["voteCount"].as_i64().unwrap_or_default(),
                }
            })
            .collect();
        choices.sort_by(|a, b| a.choice_source_id.cmp(&b.choice_source_id));
        races.push(Race {
            source_feed_id: AP_FEED.into(),
            contest_source_id: id,
            unit: "state".into(),
            choices,
        });
    }
    races.push(tx_statewide(&night.tx_page)?);
    races.sort_by(|a, b| {
        (&a.source_feed_id, &a.contest_source_id).cmp(&(&b.source_feed_id, &b.contest_source_id))
    });
    Ok(races)
}

/// Votes per (contest, county), then per choice (`candidate|party`).
pub(super) type CountyVotes = BTreeMap<(String, String), BTreeMap<String, i64>>;

/// The OpenElections file summed by a plain split: every vote-type column
/// of every precinct row, per `office[|district]`, county and
/// `candidate|party`: the CSV feed's county results are checked against
/// these, and its statewide results against their sums.
pub(super) fn csv_by_county(csv: &[u8]) -> anyhow::Result<CountyVotes> {
    let text = std::str::from_utf8(csv).context("the CSV is not UTF-8")?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().context("an empty CSV")?.split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("no {name} column"))
    };
    let (county, office, district) = (col("county")?, col("office")?, col("district")?);
    let (party, candidate) = (col("party")?, col("candidate")?);
    let vote_columns: Vec<usize> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| h.ends_with("_votes"))
        .map(|(i, _)| i)
        .collect();
    let mut sums = CountyVotes::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        anyhow::ensure!(f.len() == header.len(), "a short CSV line: {line}");
        let contest = if f[district].is_empty() {
            f[office].to_string()
        } else {
            format!("{}|{}", f[office], f[district])
        };
        let votes = sums
            .entry((contest, f[county].to_string()))
            .or_default()
            .entry(format!("{}|{}", f[candidate], f[party]))
            .or_default();
        for &i in &vote_columns {
            *votes += f[i].trim().parse::<i64>().unwrap_or(0);
        }
    }
    Ok(sums)
}

/// The CSV's statewide races: its county sums added up (the feed's
/// `[feed.results] parent = "GA"` puts the counties under the state).
pub(super) fn csv_statewide(counties: &CountyVotes) -> Vec<Race> {
    let mut by_contest: BTreeMap<&str, BTreeMap<&str, i64>> = BTreeMap::new();
    for ((contest, _), choices) in counties {
        for (choice, votes) in choices {
            *by_contest
                .entry(contest)
                .or_default()
                .entry(choice)
                .or_default() += votes;
        }
    }
    by_contest
        .into_iter()
        .map(|(contest, choices)| Race {
            source_feed_id: CSV_FEED.into(),
            contest_source_id: contest.to_string(),
            unit: "state".into(),
            choices: choices
                .into_iter()
                .map(|(id, votes)| Choice {
                    choice_source_id: id.to_string(),
                    choice_name: id.split('|').next().unwrap_or(id).to_string(),
                    votes,
                })
                .collect(),
        })
        .collect()
}

/// The text of each `<td>`/`<th>` cell of each `<tr>` of an HTML page, by
/// a plain scan (tags dropped, entities left as they are).
pub(super) fn html_rows(page: &str) -> Vec<Vec<String>> {
    let lower = page.to_ascii_lowercase();
    let mut rows = Vec::new();
    for (start, _) in lower.match_indices("<tr") {
        let end = lower[start + 3..]
            .find("<tr")
            .map_or(lower.len(), |e| start + 3 + e);
        let row = &page[start..end];
        let row_lower = &lower[start..end];
        let mut cells = Vec::new();
        let mut at = 0;
        while let Some(open) = row_lower[at..]
            .find("<td")
            .into_iter()
            .chain(row_lower[at..].find("<th"))
            .min()
        {
            let from = at + open + 3;
            let next = row_lower[from..]
                .find("<td")
                .into_iter()
                .chain(row_lower[from..].find("<th"))
                .chain(row_lower[from..].find("</tr"))
                .min()
                .map_or(row.len(), |e| from + e);
            let mut text = String::new();
            let mut in_tag = true; // still inside the opening <td ...>
            for ch in row[from..next].chars() {
                match ch {
                    '<' => in_tag = true,
                    '>' => in_tag = false,
                    c if !in_tag => text.push(c),
                    _ => {}
                }
            }
            cells.push(text.split_whitespace().collect::<Vec<_>>().join(" "));
            at = next;
        }
        rows.push(cells);
    }
    rows
}

/// The Texas page's own ALL COUNTIES row, read by [`html_rows`]: the
/// candidate columns are those before "Total Votes"; a name is the first
/// two header rows joined.
pub(super) fn tx_statewide(page: &[u8]) -> anyhow::Result<Race> {
    let page: String = page.iter().map(|&b| b as char).collect(); // ISO-8859-1
    let rows = html_rows(&page);
    let (first, second, third) = (&rows[0], &rows[1], &rows[2]);
    let total_at = (1..second.len())
        .find(|&i| second[i] == "Total" && third.get(i).is_some_and(|t| t == "Votes"))
        .context("no Total Votes column")?;
    let all = rows
        .iter()
        .find(|r| r.first().is_some_and(|c| c == "ALL COUNTIES"))
        .context("no ALL COUNTIES row")?;
    let mut choices: Vec<Choice> = (1..total_at)
        .map(|i| {
            let name = format!("{} {}", first[i], second[i]);
            Ok(Choice {
                choice_source_id: name.clone(),
                choice_name: name,
                votes: all[i].replace(',', "").parse().context("a count")?,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    choices.sort_by(|a, b| a.choice_source_id.cmp(&b.choice_source_id));
    // The race is the text of the second <h3> (the first is the time).
    let lower = page.to_ascii_lowercase();
    let h3 = lower
        .match_indices("<h3")
        .nth(1)
        .context("no second <h3>")?
        .0;
    let open = h3 + lower[h3..].find('>').context("an open <h3")? + 1;
    let close = open + lower[open..].find("</h3").context("an unclosed <h3>")?;
    let contest = page[open..close].trim().to_string();
    Ok(Race {
        source_feed_id: TX_FEED.into(),
        contest_source_id: contest,
        unit: "state".into(),
        choices,
    })
}

/// The names the demo's companion files give.
pub(super) struct Companions {
    pub(super) clarity: serde_json::Value,
    pub(super) ap: serde_json::Value,
}

impl Companions {
    pub(super) fn clarity_choice(&self, contest: &str, j: usize) -> String {
        self.clarity["contests"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["key"] == contest))
            .and_then(|c| c["choices"][j]["name"].as_str())
            .map_or_else(|| j.to_string(), str::to_string)
    }

    pub(super) fn ap_candidate(&self, id: &str) -> String {
        self.ap["races"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["candidates"].as_array().cloned().unwrap_or_default())
            .find(|c| c["candidateID"] == id)
            .and_then(|c| c["name"].as_str().map(str::to_string))
            .unwrap_or_else(|| id.to_string())
    }
}
