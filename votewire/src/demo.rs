//! `votewire demo`: the Georgia 2021 Senate runoff night, replayed through
//! the whole pipeline.
//!
//! A replay server on 127.0.0.1 plays the captured sources back on a
//! compressed clock: the Clarity `ALL.json` series as a live Clarity site
//! (`current_ver.txt` and versioned paths, HTML error snapshots included),
//! the AP interactives series as a live API, and a Texas SOS
//! race-by-county page for the scrape path. The OpenElections precinct
//! CSV is dropped onto the local SFTP server in two parts (counties A–L
//! at 45% of the night, every county at 85%), written as `.part`, renamed,
//! then marked `.done`, as a careful uploader does. `votewire ingest`,
//! `votewire aggregate` and `votewire api` (the live page, `/live`) run as
//! separate processes on fresh topics and tables, exactly as deployed. At
//! the end the demo prints each race's statewide result as every source
//! reported it.
//!
//! `--check` brings the local stack up first when its broker does not
//! answer, and compares the results with an independent computation from
//! the final snapshots (statewide sums of the Clarity counties, AP's own
//! statewide summary, the CSV summed per county and statewide by a plain
//! split, the Texas page's ALL COUNTIES row), exits non-zero on any
//! difference, and prints one JSON object as its last stdout line (the
//! contract external checks read).
//!
//! The clock: gaps between snapshots longer than ten minutes of night are
//! cut to ten minutes (the capture runs for two weeks after the night),
//! and the result is played back in `--seconds` (60 by default).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rdkafka::Offset;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Message;
use votewire_core::config::VotewireConfig;
use votewire_core::kafka::KafkaClientContext;
use votewire_schemas::{ContestResult, UnitType, codec, schemas};

pub const ELECTION: &str = "2021-01-05-GA-runoff";
const CLARITY_FEED: &str = "clarity:GA:107556";
const AP_FEED: &str = "ap:GA:2021-01-05";
const CLARITY_SERIES: &str = "clarity_enr/GA_107556_runoff_2021_ALLjson_series";
const AP_SERIES: &str = "ap_elections_api/ap_interactives_live_GA_2021-01-05";
/// OpenElections' precinct file of the runoff, dropped onto SFTP in two
/// parts (counties A–L, then every county) as county uploads would be.
const CSV_FEED: &str = "csv:GA:openelections";
const CSV_FILE: &str = "precinct_csv/openelections-data-ga/20210105__ga__runoff.csv";
/// Where in the night (as a fraction) the two CSV drops land.
const CSV_DROPS: [(f64, &str); 2] = [
    (0.45, "20210105__ga__runoff__counties-a-l.csv"),
    (0.85, "20210105__ga__runoff.csv"),
];
/// A Texas SOS race-by-county page, served for the scrape path.
const TX_FEED: &str = "html:txsos:2014-senate";
const TX_ELECTION: &str = "2014-11-04-TX-general";
const TX_PAGE: &str = "sos_html/rc-2014_general_senate.html";
const TX_MAPPING: &str = "deploy/mappings/txsos-race-by-county.toml";
/// The longest stretch of night kept between two snapshots.
const GAP_CAP_MS: i64 = 10 * 60 * 1000;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// How long the whole night takes, in seconds.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Or the replay speed, as a multiple of real time (780 plays the
    /// 13 h night in a minute); overrides --seconds.
    #[arg(long)]
    speed: Option<f64>,
    /// Compare the final results with an independent computation; exit
    /// non-zero on a difference; the last stdout line is the JSON summary.
    #[arg(long)]
    check: bool,
    /// The real election-results fixtures.
    #[arg(long, env = "VOTEWIRE_FIXTURES", default_value = "../shared/fixtures")]
    fixtures: PathBuf,
    /// Serve the live results page (`votewire api`) here during the
    /// replay; port 0 picks a free port; `off` serves none.
    #[arg(long, default_value = "127.0.0.1:8090")]
    live_listen: String,
    /// Inject a fault at 40% of the night (the chaos suite, tests/chaos):
    /// the final results must still equal the undisturbed computation.
    #[arg(long, value_enum)]
    chaos: Option<Chaos>,
    /// A fault injected from outside (the chaos suite) writes the wall
    /// time it cleared (ms since the epoch) here; the demo measures the
    /// recovery from it.
    #[arg(long, hide = true)]
    fault_cleared_file: Option<PathBuf>,
    /// Keep the services' logs in this directory.
    #[arg(long, env = "VOTEWIRE_DEMO_LOGS")]
    keep_logs: Option<PathBuf>,
}

/// The faults the demo injects itself (the chaos suite injects the others
/// from outside: broker, DynamoDB and sshd outages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Chaos {
    /// `kill -9` the ingestor; a new one starts a second later and takes
    /// the feeds over once their leases expire.
    KillIngestor,
    /// Two aggregators share the group from the start; `kill -9` one, and
    /// a new one joins a second later.
    KillAggregator,
    /// From 40% to 60% of the night the sources misbehave: Clarity's
    /// version file answers 500 to every other request, its ALL.json is
    /// truncated, AP's API hangs
    /// past the client's timeout, the Texas page is an HTML error page,
    /// and the first CSV drop is written slowly in place.
    UpstreamFaults,
}

/// Where in the night (as a fraction) a fault starts, and where an
/// upstream fault ends.
const CHAOS_AT: f64 = 0.40;
const CHAOS_UNTIL: f64 = 0.60;

/// One captured snapshot, placed on the compressed clock.
struct Snapshot {
    /// Milliseconds from the start of the replay.
    at_ms: i64,
    /// The capture's UTC time.
    recorded: String,
    bytes: bytes::Bytes,
    version: Option<String>,
    is_json: bool,
}

/// Reads a series directory through its `index.csv`.
fn load_series(dir: &Path, has_version: bool) -> anyhow::Result<Vec<(i64, Snapshot)>> {
    let index = std::fs::read_to_string(dir.join("index.csv")).with_context(|| {
        format!(
            "reading {}/index.csv (are the fixtures at --fixtures?)",
            dir.display()
        )
    })?;
    let mut out = Vec::new();
    for line in index.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        anyhow::ensure!(
            f.len() >= 6,
            "{}: a short index line: {line}",
            dir.display()
        );
        let recorded = f[1].to_string();
        let (version, payload, path) = if has_version {
            (Some(f[3].to_string()), f[5], f[6])
        } else {
            (None, f[4], f[5])
        };
        let epoch = parse_utc(&recorded)
            .with_context(|| format!("{}: time {recorded:?}", dir.display()))?;
        let bytes = std::fs::read(dir.join(path))
            .with_context(|| format!("reading {}", dir.join(path).display()))?;
        out.push((
            epoch,
            Snapshot {
                at_ms: 0,
                recorded,
                bytes: bytes.into(),
                version,
                is_json: payload == "json",
            },
        ));
    }
    Ok(out)
}

/// `2021-01-05T22:47:41Z` as milliseconds since the epoch (that shape
/// only: the fixtures' index times are whole UTC seconds).
fn parse_utc(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    s.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// Both series on one compressed clock (gaps cut to [`GAP_CAP_MS`]), and
/// the files that are not a series.
struct Night {
    clarity: Vec<Snapshot>,
    ap: Vec<Snapshot>,
    length_ms: i64,
    /// The OpenElections precinct CSV, whole.
    csv: Vec<u8>,
    /// The Texas SOS page.
    tx_page: bytes::Bytes,
}

fn night(fixtures: &Path) -> anyhow::Result<Night> {
    let clarity = load_series(&fixtures.join(CLARITY_SERIES), true)?;
    let ap = load_series(&fixtures.join(AP_SERIES), false)?;
    let mut times: Vec<i64> = clarity.iter().chain(&ap).map(|(t, _)| *t).collect();
    times.sort_unstable();
    times.dedup();
    let mut compressed = BTreeMap::new();
    let mut at = 0;
    for (i, t) in times.iter().enumerate() {
        if i > 0 {
            at += (t - times[i - 1]).min(GAP_CAP_MS);
        }
        compressed.insert(*t, at);
    }
    let place = |series: Vec<(i64, Snapshot)>| -> Vec<Snapshot> {
        series
            .into_iter()
            .map(|(t, mut s)| {
                s.at_ms = compressed[&t];
                s
            })
            .collect()
    };
    let read = |rel: &str| {
        std::fs::read(fixtures.join(rel))
            .with_context(|| format!("reading {}", fixtures.join(rel).display()))
    };
    Ok(Night {
        clarity: place(clarity),
        ap: place(ap),
        length_ms: at,
        csv: read(CSV_FILE)?,
        tx_page: read(TX_PAGE)?.into(),
    })
}

/// The first CSV drop: the header and the rows of counties A to L.
fn csv_counties_a_to_l(csv: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(csv);
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        let first = line.chars().next().map(|c| c.to_ascii_uppercase());
        if i == 0 || first.is_some_and(|c| c <= 'L') {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.into_bytes()
}

/// Writes `bytes` as `name` in place, a chunk every 200 ms over about two
/// seconds (a slow uploader), then the `.done` marker.
fn drip_file(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join(name))?;
    for chunk in bytes.chunks(bytes.len().div_ceil(10).max(1)) {
        f.write_all(chunk)?;
        f.flush()?;
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(f);
    std::fs::write(dir.join(format!("{name}.done")), b"")
}

/// Drops `bytes` as `name` into `dir` the way a careful uploader does: a
/// `.part` file renamed into place, then the `.done` marker.
fn drop_file(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let part = dir.join(format!("{name}.part"));
    std::fs::write(&part, bytes)?;
    std::fs::rename(&part, dir.join(name))?;
    std::fs::write(dir.join(format!("{name}.done")), b"")
}

/// The replay server's state: the night and its clock.
struct Replay {
    night: Night,
    started: Instant,
    /// Night milliseconds per wall millisecond.
    speed: f64,
    /// Sources misbehave while set (`--chaos upstream-faults`).
    faulty: std::sync::atomic::AtomicBool,
    /// Requests for Clarity's version file while faulty: every other one
    /// answers 500, the others lead to a truncated ALL.json.
    version_requests: std::sync::atomic::AtomicU64,
}

impl Replay {
    fn faulty(&self) -> bool {
        self.faulty.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Replay {
    fn now_ms(&self) -> i64 {
        (self.started.elapsed().as_secs_f64() * 1000.0 * self.speed) as i64
    }

    fn current<'a>(&self, series: &'a [Snapshot]) -> &'a Snapshot {
        let now = self.now_ms();
        series
            .iter()
            .rev()
            .find(|s| s.at_ms <= now)
            .unwrap_or(&series[0])
    }
}

fn serve(s: &Snapshot, headers: &HeaderMap) -> Response {
    let etag = format!("\"{:x}-{}\"", s.at_ms, s.bytes.len());
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let content_type = if s.is_json {
        "application/json"
    } else {
        "text/html"
    };
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::ETAG, etag),
        ],
        s.bytes.clone(),
    )
        .into_response()
}

async fn clarity_version(State(r): State<Arc<Replay>>) -> Response {
    if r.faulty()
        && r.version_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % 2
            == 0
    {
        return (StatusCode::INTERNAL_SERVER_ERROR, "upstream fault").into_response();
    }
    let s = r.current(&r.night.clarity);
    s.version.clone().unwrap_or_default().into_response()
}

async fn clarity_file(
    State(r): State<Arc<Replay>>,
    UrlPath(version): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let now = r.now_ms();
    // The newest snapshot of that version played so far.
    match r
        .night
        .clarity
        .iter()
        .rev()
        .find(|s| s.at_ms <= now && s.version.as_deref() == Some(version.as_str()))
    {
        // Truncated: the first half of the body, as a cut connection leaves it.
        Some(s) if r.faulty() => (
            [(header::CONTENT_TYPE, "application/json")],
            s.bytes.slice(..s.bytes.len() / 2),
        )
            .into_response(),
        Some(s) => serve(s, &headers),
        None => (StatusCode::NOT_FOUND, "no such version yet").into_response(),
    }
}

async fn ap_file(State(r): State<Arc<Replay>>, headers: HeaderMap) -> Response {
    if r.faulty() {
        // Hangs past any client timeout.
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    serve(r.current(&r.night.ap), &headers)
}

async fn tx_page(State(r): State<Arc<Replay>>) -> Response {
    if r.faulty() {
        return (
            [(header::CONTENT_TYPE, "text/html")],
            "<html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1></body></html>",
        )
            .into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/html; charset=ISO-8859-1")],
        r.night.tx_page.clone(),
    )
        .into_response()
}

/// One (source, race) at statewide level: the contract's `races` entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
struct Race {
    source_feed_id: String,
    contest_source_id: String,
    unit: String,
    choices: Vec<Choice>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
struct Choice {
    choice_source_id: String,
    choice_name: String,
    votes: i64,
}

/// The statewide results an independent reading of the final snapshots
/// gives: the Clarity counties summed per contest and choice position, and
/// AP's statewide summary per race.
fn independent(night: &Night, companions: &Companions) -> anyhow::Result<Vec<Race>> {
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
type CountyVotes = BTreeMap<(String, String), BTreeMap<String, i64>>;

/// The OpenElections file summed by a plain split: every vote-type column
/// of every precinct row, per `office[|district]`, county and
/// `candidate|party`: the CSV feed's county results are checked against
/// these, and its statewide results against their sums.
fn csv_by_county(csv: &[u8]) -> anyhow::Result<CountyVotes> {
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
fn csv_statewide(counties: &CountyVotes) -> Vec<Race> {
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
fn html_rows(page: &str) -> Vec<Vec<String>> {
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
fn tx_statewide(page: &[u8]) -> anyhow::Result<Race> {
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
struct Companions {
    clarity: serde_json::Value,
    ap: serde_json::Value,
}

impl Companions {
    fn clarity_choice(&self, contest: &str, j: usize) -> String {
        self.clarity["contests"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["key"] == contest))
            .and_then(|c| c["choices"][j]["name"].as_str())
            .map_or_else(|| j.to_string(), str::to_string)
    }

    fn ap_candidate(&self, id: &str) -> String {
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

/// A statewide result as it came off the results topic.
#[derive(Debug, Clone)]
struct StatewideEvent {
    contest_id: String,
    /// The record's timestamp (wall ms).
    at: i64,
    /// The newest fetch behind it (wall ms).
    fetched: i64,
}

/// Recovery from a fault that ended at `over` (wall ms): how long until
/// the first statewide result from a payload fetched after it was
/// produced, that is, until the pipeline ran end to end again (`only`:
/// of the contests whose id starts with it).
fn first_result_after(events: &[StatewideEvent], over: i64, only: &str) -> Option<i64> {
    events
        .iter()
        .filter(|e| e.contest_id.starts_with(only) && e.fetched >= over)
        .map(|e| e.at - over)
        .min()
}

/// The results topic as read so far: the latest result per key, and
/// fetch → result latencies (record time minus the newest fetch behind
/// the result).
#[derive(Default)]
struct ResultsSeen {
    latest: BTreeMap<Vec<u8>, ContestResult>,
    latencies_ms: Vec<i64>,
    /// The same, per official source.
    latencies_by_source: BTreeMap<String, Vec<i64>>,
    /// Per key and contributing feed: the newest `source_seq` seen.
    seqs: BTreeMap<(Vec<u8>, String), i64>,
    /// Results that went back to an older `source_seq` of a feed.
    regressions: Vec<String>,
    /// Statewide results as they came: (contest, record time, newest fetch).
    statewide_events: Vec<StatewideEvent>,
}

impl ResultsSeen {
    /// The CSV feed's county results, shaped like [`csv_by_county`].
    fn csv_counties(&self) -> CountyVotes {
        self.latest
            .values()
            .filter(|r| r.official_feed_id == CSV_FEED && r.unit_type == UnitType::County)
            .map(|r| {
                let contest = r
                    .contest_id
                    .strip_prefix(&format!("{CSV_FEED}/"))
                    .unwrap_or(&r.contest_id)
                    .to_string();
                let choices = r
                    .choices
                    .iter()
                    .map(|c| (c.choice_id.clone(), c.votes))
                    .collect();
                ((contest, r.unit_id.clone()), choices)
            })
            .collect()
    }

    /// Every source's statewide result per race.
    fn statewide(&self) -> Vec<Race> {
        let mut out: Vec<Race> = self
            .latest
            .values()
            .filter(|r| {
                r.unit_type == UnitType::State
                    && (r.election_id == ELECTION || r.election_id == TX_ELECTION)
            })
            .map(|r| {
                let contest = r
                    .contest_id
                    .strip_prefix(&format!("{}/", r.official_feed_id))
                    .unwrap_or(&r.contest_id)
                    .to_string();
                let mut choices: Vec<Choice> = r
                    .choices
                    .iter()
                    .map(|c| Choice {
                        choice_source_id: c.choice_id.clone(),
                        choice_name: c.choice_name.clone(),
                        votes: c.votes,
                    })
                    .collect();
                choices.sort_by(|a, b| a.choice_source_id.cmp(&b.choice_source_id));
                Race {
                    source_feed_id: r.official_feed_id.clone(),
                    contest_source_id: contest,
                    unit: "state".into(),
                    choices,
                }
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.source_feed_id, &a.contest_source_id)
                .cmp(&(&b.source_feed_id, &b.contest_source_id))
        });
        out
    }
}

/// Follows the results topic on a thread until `stop`.
fn follow_results(
    config: &VotewireConfig,
    seen: Arc<std::sync::Mutex<ResultsSeen>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let topic = config.topics.results.clone();
    let consumer: BaseConsumer<KafkaClientContext> =
        votewire_core::kafka::consumer_config(&config.kafka, "demo-results", "votewire-demo")
            .create_with_context(KafkaClientContext::default())?;
    votewire_core::kafka::assign_all_partitions(
        &consumer,
        &topic,
        Offset::Beginning,
        Duration::from_secs(10),
    )?;
    Ok(std::thread::spawn(move || {
        let schema = &schemas().contest_result;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let (Some(key), Some(bytes)) = (m.key(), m.payload()) else {
                continue;
            };
            let Ok(r) = codec::decode::<ContestResult>(schema, bytes) else {
                continue;
            };
            let mut seen = seen.lock().expect("results lock");
            for c in &r.contributors {
                let k = (key.to_vec(), c.feed_id.clone());
                match seen.seqs.get(&k).copied() {
                    Some(before) if c.source_seq < before => {
                        let what = format!(
                            "{} / {}: {} went from source_seq {before} back to {}",
                            r.contest_id, r.unit_id, c.feed_id, c.source_seq
                        );
                        seen.regressions.push(what);
                    }
                    _ => {
                        seen.seqs.insert(k, c.source_seq);
                    }
                }
            }
            if let Some(ts) = m.timestamp().to_millis() {
                if r.unit_type == UnitType::State {
                    seen.statewide_events.push(StatewideEvent {
                        contest_id: r.contest_id.clone(),
                        at: ts,
                        fetched: r.last_updated,
                    });
                }
                seen.latencies_ms.push(ts - r.last_updated);
                seen.latencies_by_source
                    .entry(r.official_feed_id.clone())
                    .or_default()
                    .push(ts - r.last_updated);
            }
            seen.latest.insert(key.to_vec(), r);
        }
    }))
}

fn percentile(sorted: &[i64], p: usize) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[(sorted.len() * p).div_ceil(100).saturating_sub(1)]
}

/// The local SFTP server's drop directory for this run, from the stack's
/// `VOTEWIRE_SFTP_*` variables: `None` when the stack names no SFTP server.
struct SftpDrop {
    /// The directory on this machine (inside the server's chroot).
    local: PathBuf,
    /// The feed's `[feed.source]` table.
    source_toml: String,
}

impl SftpDrop {
    fn from_env(run_id: &str) -> anyhow::Result<Option<SftpDrop>> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let (Some(root), Some(host), Some(port), Some(user), Some(key), Some(known_hosts)) = (
            var("VOTEWIRE_SFTP_ROOT"),
            var("VOTEWIRE_SFTP_HOST"),
            var("VOTEWIRE_SFTP_PORT"),
            var("VOTEWIRE_SFTP_USER"),
            var("VOTEWIRE_SFTP_KEY"),
            var("VOTEWIRE_SFTP_KNOWN_HOSTS"),
        ) else {
            return Ok(None);
        };
        let local = Path::new(&root).join("drop").join(run_id);
        std::fs::create_dir_all(&local)
            .with_context(|| format!("creating the SFTP drop {}", local.display()))?;
        let source_toml = format!(
            r#"[feed.source]
kind = "sftp"
host = "{host}"
port = {port}
user = "{user}"
key_file = "{key}"
known_hosts = "{known_hosts}"
glob = "/drop/{run_id}/*.csv"
min_age = "1s"
done_marker = ".done"
"#
        );
        Ok(Some(SftpDrop { local, source_toml }))
    }
}

/// The Texas feed, with the shipped race-by-county mapping inline.
fn tx_feed_toml(base: &str, mapping: &str) -> anyhow::Result<String> {
    let mapping: toml::Table = toml::from_str(mapping).context("the Texas mapping")?;
    let feed = toml::toml! {
        id = TX_FEED
        family = "html-table"
        election_id = TX_ELECTION
        [source]
        kind = "html"
        [cadence]
        interval = "2s"
        jitter = "0s"
        stale_after = "10m"
    };
    let mut feed = feed;
    feed["source"].as_table_mut().context("source")?.insert(
        "url".into(),
        format!("{base}/tx/elchist175_race1.htm").into(),
    );
    feed.insert("mapping".into(), mapping.into());
    let mut doc = toml::Table::new();
    doc.insert("feed".into(), vec![toml::Value::Table(feed)].into());
    Ok(toml::to_string(&doc)?)
}

fn feeds_toml(
    base: &str,
    clarity_companion: &Path,
    ap_companion: &Path,
    sftp: Option<&SftpDrop>,
) -> String {
    let csv = sftp.map_or_else(String::new, |d| {
        format!(
            r#"
[[feed]]
id = "{CSV_FEED}"
family = "csv"
election_id = "{ELECTION}"
priority = 5
{}[feed.cadence]
interval = "1s"
jitter = "0s"
stale_after = "1h"
[feed.results]
parent = "GA"
"#,
            d.source_toml
        )
    });
    format!(
        r#"# Written by `votewire demo`: the replayed sources of the GA 2021 runoff night.
[[feed]]
id = "{CLARITY_FEED}"
family = "clarity-json"
election_id = "{ELECTION}"
priority = 20
companion = "{}"
[feed.source]
kind = "clarity"
base_url = "{base}/GA/107556"
file = "json/ALL.json"
[feed.cadence]
interval = "1s"
jitter = "0s"
stale_after = "10m"

[[feed]]
id = "{AP_FEED}"
family = "ap-interactive"
election_id = "{ELECTION}"
priority = 10
companion = "{}"
[feed.source]
kind = "http"
url = "{base}/ap/GA.json"
[feed.limits]
timeout = "5s"
max_bytes = 8_388_608
[feed.cadence]
interval = "1s"
jitter = "0s"
stale_after = "10m"
{csv}"#,
        clarity_companion.display(),
        ap_companion.display()
    )
}

fn interrupt(child: &tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status();
    }
}

/// `export KEY=VALUE` (or `KEY=VALUE`) lines of the stack's env file
/// (`deploy/local/stack env` names it); comments and blank lines are
/// skipped.
fn stack_env(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.strip_prefix("export ").unwrap_or(l))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// With `--check`, the demo runs on the local stack unless the shell names
/// a stack of its own: when no `VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS` or
/// `VOTEWIRE_DYNAMODB_ENDPOINT` is set, or the broker they name does not
/// answer, bring the local stack up (`deploy/local/stack up`, which
/// installs what is missing and leaves running services alone) and run
/// the demo again in the stack's environment. `None` when the shell's
/// stack answers.
async fn stack_up_and_rerun(
    config: &VotewireConfig,
    args: &DemoArgs,
) -> anyhow::Result<Option<ExitCode>> {
    if std::env::var_os("VOTEWIRE_DEMO_RESTARTED").is_some() {
        return Ok(None);
    }
    let named = [
        "VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS",
        "VOTEWIRE_DYNAMODB_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some());
    let script = Path::new("deploy/local/stack");
    if named {
        let mut probe = config.kafka.clone();
        probe.request_timeout_ms = 3_000;
        let reachable =
            tokio::task::spawn_blocking(move || votewire_core::kafka::broker_ids(&probe))
                .await?
                .is_ok_and(|ids| !ids.is_empty());
        if reachable {
            return Ok(None);
        }
        anyhow::ensure!(
            script.is_file(),
            "the broker at {} does not answer; start the local stack (deploy/local/stack up, from the repository root)",
            config.kafka.bootstrap_servers
        );
        eprintln!("votewire demo: the broker does not answer; bringing the local stack up");
    } else {
        anyhow::ensure!(
            script.is_file(),
            "no stack is named (VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS, VOTEWIRE_DYNAMODB_ENDPOINT) and there is no deploy/local/stack here: run from the repository root, or load a stack's variables"
        );
        eprintln!(
            "votewire demo: this shell names no stack; using the local one (deploy/local/stack up, then its env file)"
        );
    }
    // The stack's report goes to stderr: stdout ends with the JSON line.
    let up = tokio::process::Command::new(script)
        .arg("up")
        .stdout(std::io::stderr())
        .status()
        .await?;
    anyhow::ensure!(up.success(), "deploy/local/stack up failed");
    let env_file = tokio::process::Command::new(script)
        .arg("env")
        .output()
        .await?;
    let path = String::from_utf8_lossy(&env_file.stdout).trim().to_string();
    let vars = stack_env(
        &std::fs::read_to_string(&path)
            .with_context(|| format!("reading the stack's env file {path:?}"))?,
    );
    let status = tokio::process::Command::new(std::env::current_exe()?)
        .arg("demo")
        .arg("--check")
        .args(["--seconds", &args.seconds.to_string()])
        .args(
            args.speed
                .map(|s| vec!["--speed".to_string(), s.to_string()])
                .unwrap_or_default(),
        )
        .arg("--fixtures")
        .arg(&args.fixtures)
        .args(["--live-listen", &args.live_listen])
        .args(
            args.chaos
                .and_then(|c| clap::ValueEnum::to_possible_value(&c))
                .map(|v| vec!["--chaos".to_string(), v.get_name().to_string()])
                .unwrap_or_default(),
        )
        .envs(vars)
        .env("VOTEWIRE_DEMO_RESTARTED", "1")
        .status()
        .await?;
    Ok(Some(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }))
}

/// The address `--live-listen` names (a free port for port 0), or `None`
/// for `off`.
fn live_address(listen: &str) -> anyhow::Result<Option<std::net::SocketAddr>> {
    if listen == "off" {
        return Ok(None);
    }
    let addr: std::net::SocketAddr = listen.parse().with_context(|| {
        format!("--live-listen {listen:?} is not an address like 127.0.0.1:8090")
    })?;
    if addr.port() != 0 {
        return Ok(Some(addr));
    }
    let probe = std::net::TcpListener::bind(addr)?;
    Ok(Some(probe.local_addr()?))
}

/// A one-off admin token for the demo's API: nobody uses it (the live
/// page is public), but the API does not start without one.
fn one_off_token() -> anyhow::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// Statewide votes per (contest id, choice id) as `/live/contests` serves
/// them, to know when the page's source has caught up.
async fn live_statewide(
    client: &reqwest::Client,
    base: &str,
) -> anyhow::Result<BTreeMap<(String, String), i64>> {
    let body: serde_json::Value = client
        .get(format!("{base}/live/contests?election={ELECTION}"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut out = BTreeMap::new();
    for c in body["contests"].as_array().context("contests")? {
        let id = c["contest_id"].as_str().unwrap_or_default().to_string();
        for ch in c["state"]["choices"].as_array().into_iter().flatten() {
            out.insert(
                (
                    id.clone(),
                    ch["choice_id"].as_str().unwrap_or_default().to_string(),
                ),
                ch["votes"].as_i64().unwrap_or_default(),
            );
        }
    }
    Ok(out)
}

fn statewide_votes(races: &[Race]) -> BTreeMap<(String, String), i64> {
    races
        .iter()
        .filter(|r| r.source_feed_id != TX_FEED)
        .flat_map(|r| {
            r.choices.iter().map(move |c| {
                (
                    (
                        format!("{}/{}", r.source_feed_id, r.contest_source_id),
                        c.choice_source_id.clone(),
                    ),
                    c.votes,
                )
            })
        })
        .collect()
}

pub async fn run(config: &VotewireConfig, args: DemoArgs) -> anyhow::Result<ExitCode> {
    if args.check
        && let Some(code) = stack_up_and_rerun(config, &args).await?
    {
        return Ok(code);
    }
    let root = std::env::current_dir()?;
    let clarity_companion = root.join("deploy/demo/clarity-GA-107556-companion.json");
    let ap_companion = root.join("deploy/demo/ap-GA-2021-01-05-companion.json");
    let companions = Companions {
        clarity: serde_json::from_slice(&std::fs::read(&clarity_companion).with_context(
            || {
                format!(
                    "reading {} (run from the repository root)",
                    clarity_companion.display()
                )
            },
        )?)?,
        ap: serde_json::from_slice(&std::fs::read(&ap_companion)?)?,
    };
    let night = night(&args.fixtures)?;
    let speed = match args.speed {
        Some(s) => s.max(1.0),
        None => night.length_ms as f64 / (args.seconds.max(1.0) * 1000.0),
    };

    // Fresh topics and tables for this run.
    // Unique per run, also when several demos start in one second.
    let run_id = format!(
        "demo-{}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        std::process::id()
    );
    let sftp = SftpDrop::from_env(&run_id)?;
    if sftp.is_none() {
        eprintln!(
            "votewire demo: no VOTEWIRE_SFTP_* variables (the stack's env file sets them): the CSV drop is left out"
        );
    }
    let mut expected = independent(&night, &companions)?;
    let expected_counties = if sftp.is_some() {
        csv_by_county(&night.csv)?
    } else {
        BTreeMap::new()
    };
    expected.extend(csv_statewide(&expected_counties));
    expected.sort_by(|a, b| {
        (&a.source_feed_id, &a.contest_source_id).cmp(&(&b.source_feed_id, &b.contest_source_id))
    });
    let tx_mapping = std::fs::read_to_string(root.join(TX_MAPPING))
        .with_context(|| format!("reading {TX_MAPPING}"))?;
    let csv_parts = [csv_counties_a_to_l(&night.csv), night.csv.clone()];
    let mut config = config.clone();
    config.topics.votes = format!("{run_id}.votes");
    config.topics.snapshots = format!("{run_id}.snapshots");
    config.topics.results = format!("{run_id}.results");
    config.topics.feed_status = format!("{run_id}.status");
    config.topics.dlq = format!("{run_id}.dlq");
    config.state_store.table_prefix = format!("{}_", run_id.replace('-', "_"));
    votewire_core::topics::ensure_declared_topics(&config.kafka, &config.topics)
        .await
        .context("creating the demo's topics (is the stack up? deploy/local/stack up)")?;

    // The replay server.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (clarity_n, ap_n, length_ms) = (night.clarity.len(), night.ap.len(), night.length_ms);
    let replay = Arc::new(Replay {
        night,
        started: Instant::now(),
        speed,
        faulty: std::sync::atomic::AtomicBool::new(false),
        version_requests: std::sync::atomic::AtomicU64::new(0),
    });
    let app = axum::Router::new()
        .route(
            "/GA/107556/current_ver.txt",
            axum::routing::get(clarity_version),
        )
        .route(
            "/GA/107556/{version}/json/ALL.json",
            axum::routing::get(clarity_file),
        )
        .route("/ap/GA.json", axum::routing::get(ap_file))
        .route("/tx/elchist175_race1.htm", axum::routing::get(tx_page))
        .with_state(replay.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    eprintln!(
        "votewire demo: GA 2021 runoff night: {clarity_n} Clarity and {ap_n} AP snapshots, {:.1} h of night in {:.0} s, served at {base}",
        length_ms as f64 / 3.6e6,
        length_ms as f64 / speed / 1000.0
    );

    // The feeds, and the two services as processes.
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("ga-runoff.toml"),
        feeds_toml(&base, &clarity_companion, &ap_companion, sftp.as_ref()),
    )?;
    std::fs::write(
        dir.path().join("tx-senate.toml"),
        tx_feed_toml(&base, &tx_mapping)?,
    )?;
    let exe = std::env::current_exe()?;
    let service = |args: &[&str]| {
        let mut c = tokio::process::Command::new(&exe);
        c.args(args)
            .env("VOTEWIRE_TOPIC_VOTES", &config.topics.votes)
            .env("VOTEWIRE_TOPIC_SNAPSHOTS", &config.topics.snapshots)
            .env("VOTEWIRE_TOPIC_RESULTS", &config.topics.results)
            .env("VOTEWIRE_TOPIC_FEED_STATUS", &config.topics.feed_status)
            .env("VOTEWIRE_TOPIC_DLQ", &config.topics.dlq)
            .env("VOTEWIRE_TABLE_PREFIX", &config.state_store.table_prefix)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        c
    };
    // Each service's stderr goes to a log beside the feed registry; the
    // demo prints their tails when the check fails.
    let log = |name: &str| -> anyhow::Result<(PathBuf, std::fs::File)> {
        let path = dir.path().join(format!("{name}.log"));
        Ok((path.clone(), std::fs::File::create(&path)?))
    };
    let spawn_aggregator = |instance: &str| -> anyhow::Result<tokio::process::Child> {
        let (_, err) = log(instance)?;
        service(&["aggregate", "--instance", instance, "--group", &run_id])
            .stderr(err)
            .spawn()
            .context("starting an aggregator")
    };
    // Under --chaos kill-aggregator two members share the group from the
    // start, so the kill moves partitions to a live member and then to the
    // one that joins.
    let mut aggregators = vec![spawn_aggregator("demo-aggregate")?];
    if args.chaos == Some(Chaos::KillAggregator) {
        aggregators.push(spawn_aggregator("demo-aggregate-2")?);
    }
    let feeds_dir = dir.path().to_string_lossy().into_owned();
    // The live page: a real `votewire api` on the demo's results topic.
    let live = live_address(&args.live_listen)?;
    let api = match live {
        Some(addr) => {
            let (_, api_err) = log("api")?;
            let child = service(&["api", "--listen", &addr.to_string(), "--feeds", &feeds_dir])
                .env(
                    "VOTEWIRE_API_TOKENS",
                    format!("demo admin {}", one_off_token()?),
                )
                .stderr(api_err)
                .spawn()
                .context("starting the API")?;
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()?;
            let base = format!("http://{addr}");
            let up = Instant::now();
            while client.get(format!("{base}/healthz")).send().await.is_err() {
                if up.elapsed() >= Duration::from_secs(20) {
                    return Err(crate::exit::Unreachable(format!(
                        "the API did not answer at {base} within 20 s (is the port taken? --live-listen)"
                    ))
                    .into());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            eprintln!("votewire demo: live results at {base}/live?election={ELECTION}");
            Some((child, client, base))
        }
        None => None,
    };
    // Each ingestor's payload lines, counted as they come: in all, and
    // cells per ingestor instance.
    let counts = Arc::new(std::sync::Mutex::new((0u64, 0u64)));
    let per_instance: Arc<std::sync::Mutex<BTreeMap<String, u64>>> = Arc::default();
    let spawn_ingestor = |instance: &str| -> anyhow::Result<tokio::process::Child> {
        use tokio::io::AsyncBufReadExt;
        let (_, err) = log(instance)?;
        let mut child = service(&[
            "ingest",
            "--instance",
            instance,
            "--lease-ttl",
            "3s",
            "--feeds",
            &feeds_dir,
        ])
        .stderr(err)
        .spawn()
        .context("starting the ingestor")?;
        let out = child.stdout.take().expect("piped");
        let counts = counts.clone();
        let per_instance = per_instance.clone();
        let instance = instance.to_string();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(out).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let mut c = counts.lock().expect("counts lock");
                if let Some(n) = l
                    .split(" changed=")
                    .nth(1)
                    .and_then(|n| n.trim().parse::<u64>().ok())
                {
                    c.0 += n;
                    *per_instance
                        .lock()
                        .expect("instances lock")
                        .entry(instance.clone())
                        .or_default() += n;
                } else if l.contains("rejected (dead-lettered)") {
                    c.1 += 1;
                }
            }
        });
        Ok(child)
    };
    let mut ingestor = spawn_ingestor("demo-ingest")?;
    let seen = Arc::new(std::sync::Mutex::new(ResultsSeen::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let follower = follow_results(&config, seen.clone(), stop.clone())?;

    // The night, with a progress bar of the replay clock.
    let bar = indicatif::ProgressBar::new(length_ms.max(1) as u64);
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut drops = 0;
    // (fault injected, fault over), as wall milliseconds since the epoch.
    let mut fault: (Option<i64>, Option<i64>) = (None, None);
    while replay.now_ms() < length_ms {
        // A service that stopped on its own ends the demo at once.
        for (what, child) in std::iter::once(("the ingestor", &mut ingestor))
            .chain(aggregators.iter_mut().map(|a| ("an aggregator", a)))
        {
            if let Some(status) = child.try_wait()? {
                let logs: Vec<String> = std::fs::read_dir(dir.path())?
                    .flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                    .map(|e| {
                        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                        let tail: Vec<&str> = text.lines().rev().take(10).collect();
                        format!(
                            "--- {}:\n{}",
                            e.file_name().to_string_lossy(),
                            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                        )
                    })
                    .collect();
                anyhow::bail!(
                    "{what} stopped ({status}) during the night\n{}",
                    logs.join("\n")
                );
            }
        }
        let now = replay.now_ms();
        let at_fraction = |f: f64| now as f64 >= f * length_ms as f64;
        if let Some(chaos) = args.chaos
            && fault.0.is_none()
            && at_fraction(CHAOS_AT)
        {
            fault.0 = Some(votewire_core::unix_ms());
            match chaos {
                Chaos::KillIngestor => {
                    ingestor.start_kill()?; // SIGKILL
                    ingestor.wait().await?;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    ingestor = spawn_ingestor("demo-ingest-2")?;
                    fault.1 = Some(votewire_core::unix_ms());
                }
                Chaos::KillAggregator => {
                    let mut victim = aggregators.remove(0);
                    victim.start_kill()?;
                    victim.wait().await?;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    aggregators.push(spawn_aggregator("demo-aggregate-3")?);
                    fault.1 = Some(votewire_core::unix_ms());
                }
                Chaos::UpstreamFaults => {
                    replay
                        .faulty
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            eprintln!("votewire demo: chaos: {chaos:?} injected");
        }
        if args.chaos == Some(Chaos::UpstreamFaults)
            && fault.1.is_none()
            && at_fraction(CHAOS_UNTIL)
        {
            replay
                .faulty
                .store(false, std::sync::atomic::Ordering::Relaxed);
            fault.1 = Some(votewire_core::unix_ms());
            eprintln!("votewire demo: chaos: the sources behave again");
        }
        if let Some(d) = &sftp
            && let Some((at, name)) = CSV_DROPS.get(drops)
            && at_fraction(*at)
        {
            if replay.faulty() {
                // A slow uploader, in place: the ingestor must wait for
                // the whole file (stable size, age, the .done marker).
                let (dir, name, bytes) =
                    (d.local.clone(), name.to_string(), csv_parts[drops].clone());
                tokio::task::spawn_blocking(move || drip_file(&dir, &name, &bytes));
            } else {
                drop_file(&d.local, name, &csv_parts[drops])
                    .with_context(|| format!("dropping {name} into {}", d.local.display()))?;
            }
            drops += 1;
        }
        let s = replay.current(&replay.night.clarity);
        let c = *counts.lock().expect("counts lock");
        bar.set_position(now.max(0) as u64);
        bar.set_message(format!(
            "night clock {} | {} cells published, {} payloads rejected",
            s.recorded, c.0, c.1
        ));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bar.finish_and_clear();

    // The last snapshots stay up until the results have converged. On an
    // idle machine that takes a few seconds; a starved one (the chaos
    // suite's nights under the whole suite's load) has needed over 60 s
    // to drain a partition that lost its leader, so the check allows 120.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut quiet_since = Instant::now();
    let mut last_count = 0;
    loop {
        let (now_races, counties, n) = {
            let s = seen.lock().expect("results lock");
            (s.statewide(), s.csv_counties(), s.latest.len())
        };
        if n != last_count {
            last_count = n;
            quiet_since = Instant::now();
        }
        let converged = now_races == expected && counties == expected_counties;
        if converged
            || Instant::now() >= deadline
            || (!args.check && quiet_since.elapsed() > Duration::from_secs(5))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The live page's source catches up before it stops: what readers
    // see last is the final result.
    if let Some((_, client, base)) = &api {
        let want = statewide_votes(&seen.lock().expect("results lock").statewide());
        let until = Instant::now() + Duration::from_secs(15);
        while Instant::now() < until
            && live_statewide(client, base).await.ok().as_ref() != Some(&want)
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // One more stream tick, so every open page has the last event.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    interrupt(&ingestor);
    for a in &aggregators {
        interrupt(a);
    }
    if let Some((child, _, _)) = &api {
        interrupt(child);
    }
    for mut child in [ingestor]
        .into_iter()
        .chain(aggregators)
        .chain(api.map(|(child, _, _)| child))
    {
        if tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = follower.join();
    for (instance, cells) in per_instance.lock().expect("instances lock").iter() {
        eprintln!("votewire demo: {instance} published {cells} cells");
    }
    // The services' logs, kept where asked (the chaos suite reads them).
    if let Some(keep) = &args.keep_logs {
        std::fs::create_dir_all(keep)?;
        for e in std::fs::read_dir(dir.path())?.flatten() {
            if e.path().extension().is_some_and(|x| x == "log") {
                std::fs::copy(e.path(), keep.join(e.file_name()))?;
            }
        }
    }

    let (races, counties, mut latencies, by_source, regressions, events) = {
        let s = seen.lock().expect("results lock");
        (
            s.statewide(),
            s.csv_counties(),
            s.latencies_ms.clone(),
            s.latencies_by_source.clone(),
            s.regressions.clone(),
            s.statewide_events.clone(),
        )
    };
    let external = args
        .fault_cleared_file
        .as_ref()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|t| t.trim().parse::<i64>().ok());
    let label = args
        .chaos
        .map_or_else(|| "external fault".to_string(), |c| format!("{c:?}"));
    if let Some(over) = fault.1.or(external) {
        let recovery = first_result_after(&events, over, "");
        // The CSV's first statewide result from a file fetched after it.
        let csv = first_result_after(&events, over, CSV_FEED);
        let ms = |v: Option<i64>| v.map_or_else(|| "none".to_string(), |ms| ms.to_string());
        eprintln!(
            "votewire demo: chaos: {label} recovery_ms={} csv_ms={}",
            ms(recovery),
            ms(csv)
        );
    }
    latencies.sort_unstable();
    println!("Fetch -> result latency, per source (every result at every unit):");
    for (source, mut ms) in by_source {
        ms.sort_unstable();
        println!(
            "  {source:<28} {:>6} results  p50 {:>5} ms  p99 {:>5} ms",
            ms.len(),
            percentile(&ms, 50),
            percentile(&ms, 99)
        );
    }
    println!("Final statewide results, as each source reported them:");
    for r in &races {
        println!("  {} / {}", r.source_feed_id, r.contest_source_id);
        for c in &r.choices {
            println!("      {:<40} {:>10}", c.choice_name, c.votes);
        }
    }
    let (cells, rejected) = *counts.lock().expect("counts lock");
    if sftp.is_some() {
        let equal = expected_counties
            .iter()
            .filter(|(k, v)| counties.get(*k) == Some(*v))
            .count();
        println!(
            "{CSV_FEED} (dropped over SFTP): {equal} of {} (contest, county) results equal the file's own sums",
            expected_counties.len()
        );
    }
    print_where_the_results_are(&config);
    for r in regressions.iter().take(10) {
        eprintln!("votewire demo: a result regressed: {r}");
    }
    let matches = races == expected && counties == expected_counties && regressions.is_empty();
    if args.check {
        if !matches {
            eprintln!(
                "votewire demo --check: the results differ from the independent computation, or regressed ({} times)",
                regressions.len()
            );
            let mut logs: Vec<PathBuf> = std::fs::read_dir(dir.path())?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect();
            logs.sort();
            for path in &logs {
                let name = path.file_stem().unwrap_or_default().to_string_lossy();
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                eprintln!("--- the last lines of {name}'s log:");
                for l in tail.iter().rev() {
                    eprintln!("  {l}");
                }
            }
            for (k, want) in expected_counties
                .iter()
                .filter(|(k, v)| counties.get(*k) != Some(*v))
                .take(10)
            {
                eprintln!(
                    "  {CSV_FEED} {k:?}: want {want:?}, got {:?}",
                    counties.get(k)
                );
            }
            for want in &expected {
                match races.iter().find(|r| {
                    r.source_feed_id == want.source_feed_id
                        && r.contest_source_id == want.contest_source_id
                }) {
                    Some(got) if got == want => {}
                    Some(got) => eprintln!("  {want:?}\n  != {got:?}"),
                    None => eprintln!("  missing: {want:?}"),
                }
            }
        }
        println!(
            "{}",
            serde_json::json!({
                "races": races,
                "cells_published": cells,
                "payloads_rejected": rejected,
                "latency_ms": {"p50": percentile(&latencies, 50), "p99": percentile(&latencies, 99)},
            })
        );
        if !matches {
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The demo's topics outlive it: how a subscriber reads its results
/// with the tools docs/subscribers.md describes. The night's topic
/// names also go to `state_dir/demo/night.env` (`export` lines), so a
/// shell can point every votewire command at them with one `source`.
fn print_where_the_results_are(config: &VotewireConfig) {
    let topics = &config.topics;
    let bootstrap = &config.kafka.bootstrap_servers;
    let env_file = config.state_dir.join("demo").join("night.env");
    let lines = [
        ("VOTEWIRE_TOPIC_VOTES", &topics.votes),
        ("VOTEWIRE_TOPIC_SNAPSHOTS", &topics.snapshots),
        ("VOTEWIRE_TOPIC_RESULTS", &topics.results),
        ("VOTEWIRE_TOPIC_FEED_STATUS", &topics.feed_status),
        ("VOTEWIRE_TOPIC_DLQ", &topics.dlq),
    ]
    .iter()
    .map(|(var, topic)| format!("export {var}={topic}\n"))
    .collect::<String>();
    let written =
        std::fs::create_dir_all(env_file.parent().unwrap_or(&config.state_dir)).and_then(|()| {
            std::fs::write(
                &env_file,
                format!("# votewire demo: this night's topics\n{lines}"),
            )
        });
    let topic = &topics.results;
    println!("This night's results stay on {topic}; read them with:");
    match written {
        Ok(()) => {
            println!(
                "  source {}   # this night's topic names",
                env_file.display()
            );
            println!("  votewire tail results --idle 5s");
        }
        Err(e) => {
            // An earlier night's file must not pass for this one's.
            let _ = std::fs::remove_file(&env_file);
            eprintln!("votewire demo: could not write {}: {e}", env_file.display());
            println!("  VOTEWIRE_TOPIC_RESULTS={topic} votewire tail results --idle 5s");
        }
    }
    println!(
        "  python3 docs/examples/consume_results.py --bootstrap {bootstrap} --topic {topic} --idle 5"
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_stack_env_file_reads_as_variables() {
        let vars = super::stack_env(
            "# written by deploy/local/stack\nexport VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092\n\nAWS_ACCESS_KEY_ID=x=y\nnot a variable\n",
        );
        assert_eq!(
            vars,
            [
                (
                    "VOTEWIRE_KAFKA_BOOTSTRAP_SERVERS".to_string(),
                    "127.0.0.1:9092".to_string()
                ),
                ("AWS_ACCESS_KEY_ID".to_string(), "x=y".to_string()),
            ]
        );
    }

    #[test]
    fn recovery_is_the_first_result_from_a_payload_fetched_after_the_fault() {
        use super::{StatewideEvent, first_result_after};
        let e = |contest: &str, at: i64, fetched: i64| StatewideEvent {
            contest_id: contest.into(),
            at,
            fetched,
        };
        let events = [
            e("clarity/1", 21_000, 19_000), // fetched before the fault ended
            e("csv/1", 26_000, 25_500),
            e("clarity/1", 23_400, 23_000),
        ];
        assert_eq!(first_result_after(&events, 20_000, ""), Some(3_400));
        assert_eq!(first_result_after(&events, 20_000, "csv"), Some(6_000));
        assert_eq!(first_result_after(&events, 30_000, ""), None);
    }

    #[test]
    fn capture_times_parse_to_epoch_milliseconds() {
        // Expected values from Python's datetime(..., tzinfo=utc).timestamp().
        assert_eq!(super::parse_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            super::parse_utc("2021-01-05T22:47:41Z"),
            Some(1_609_886_861_000)
        );
        assert_eq!(
            super::parse_utc("2000-02-29T12:00:00Z"),
            Some(951_825_600_000)
        );
        assert_eq!(super::parse_utc("2021-01-05 22:47:41"), None);
    }
}
