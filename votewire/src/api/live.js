"use strict";
// Results arrive as Server-Sent Events from /live/events (one `contest`
// event per contest, then one per change); without EventSource, or when
// the stream is refused, the page polls /live/contests. Every update
// changes the page in place: no reload. Text from sources is only ever
// set as textContent.
const params = new URLSearchParams(location.search);
const query = params.get("election") ? "?election=" + encodeURIComponent(params.get("election")) : "";
const contests = new Map();
let selected = null;
const fmt = new Intl.NumberFormat("en-US");
const el = (tag, props = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "text") e.textContent = v; else if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  kids.forEach(k => e.append(k));
  return e;
};

function reporting(u) {
  if (u.precincts_total) {
    const pct = (100 * u.precincts_reporting / u.precincts_total).toFixed(0);
    return `${pct}% of precincts reporting (${fmt.format(u.precincts_reporting)} of ${fmt.format(u.precincts_total)})`;
  }
  if (u.pct_expected_vote != null) return `${u.pct_expected_vote.toFixed(0)}% of the expected vote counted`;
  return "Reporting not stated by the source";
}

function margin(u) {
  const leader = u.choices.find(c => c.choice_id === u.leader_choice_id);
  if (!leader || u.margin_votes == null) return "No leader yet";
  const pts = u.margin_pct != null ? ` (${u.margin_pct.toFixed(1)} pts)` : "";
  return `${leader.choice_name} leads by ${fmt.format(u.margin_votes)} votes${pts}`;
}

function card(c) {
  let art = document.querySelector(`article[data-contest-id="${CSS.escape(c.contest_id)}"]`);
  if (!art) {
    const headingId = "race-" + contests.size + "-" + Math.random().toString(36).slice(2, 8);
    art = el("article", { class: "race", "data-contest-id": c.contest_id, "aria-labelledby": headingId });
    art.append(el("h3", { id: headingId }), el("p", { class: "source" }));
    const table = el("table", {},
      el("caption", { class: "visually-hidden" }),
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Candidate" }), el("th", { scope: "col", class: "num", text: "Votes" }), el("th", { scope: "col", class: "num", text: "%" }))),
      el("tbody"));
    const button = el("button", { type: "button", "aria-controls": "counties", "aria-pressed": "false", text: "Counties" });
    button.addEventListener("click", () => select(c.contest_id));
    art.append(table, el("p", { class: "margin" }), el("p", { class: "reporting" }), button);
    const all = [...document.querySelectorAll("#races article")];
    const after = all.find(a => a.dataset.contestId > c.contest_id);
    document.getElementById("races").insertBefore(art, after || null);
  }
  art.querySelector("h3").textContent = c.contest_name;
  art.querySelector(".source").textContent = "Source: " + c.official_feed_id;
  art.querySelector("caption").textContent = c.contest_name + ", statewide";
  const tbody = art.querySelector("tbody");
  const u = c.state;
  if (!u) {
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: "3", text: "This source reports no statewide figure: see its counties." })));
    art.querySelector(".margin").textContent = "";
    art.querySelector(".reporting").textContent = `${c.counties.length} counties reporting`;
    return;
  }
  const rows = [...u.choices].sort((a, b) => b.votes - a.votes).map(ch => {
    const name = el("th", { scope: "row", text: ch.choice_name });
    if (ch.choice_id === u.leader_choice_id) name.append(el("span", { class: "badge", text: "Leading" }));
    return el("tr", { "data-choice-id": ch.choice_id, class: ch.choice_id === u.leader_choice_id ? "leader" : "" },
      name,
      el("td", { class: "num votes", "data-votes": String(ch.votes), text: fmt.format(ch.votes) }),
      el("td", { class: "num", text: ch.percent.toFixed(1) }));
  });
  tbody.replaceChildren(...rows);
  art.querySelector(".margin").textContent = margin(u);
  art.querySelector(".reporting").textContent = reporting(u);
}

function select(id) {
  selected = id;
  document.querySelectorAll("#races button").forEach(b =>
    b.setAttribute("aria-pressed", String(b.closest("article").dataset.contestId === id)));
  countyTable();
}

function countyTable() {
  const c = contests.get(selected);
  const table = document.getElementById("counties");
  if (!c) return;
  document.getElementById("counties-hint").hidden = true;
  table.dataset.contestId = c.contest_id;
  document.getElementById("counties-caption").textContent = `${c.contest_name} by county (${c.official_feed_id})`;
  const names = new Map();
  c.counties.forEach(u => u.choices.forEach(ch => names.set(ch.choice_id, ch.choice_name)));
  const ids = [...names.keys()];
  table.tHead.replaceChildren(el("tr", {},
    el("th", { scope: "col", text: "County" }),
    ...ids.map(id => el("th", { scope: "col", class: "num", text: names.get(id) })),
    el("th", { scope: "col", class: "num", text: "Total" }),
    el("th", { scope: "col", text: "Leader" })));
  table.tBodies[0].replaceChildren(...c.counties.map(u => {
    const votes = new Map(u.choices.map(ch => [ch.choice_id, ch.votes]));
    return el("tr", { "data-unit-id": u.unit_id },
      el("th", { scope: "row", text: u.unit_name }),
      ...ids.map(id => el("td", { class: "num", "data-choice-id": id, "data-votes": votes.has(id) ? String(votes.get(id)) : "", text: votes.has(id) ? fmt.format(votes.get(id)) : "–" })),
      el("td", { class: "num", text: fmt.format(u.total_votes) }),
      el("td", { text: names.get(u.leader_choice_id) || "–" }));
  }));
}

function update(c) {
  contests.set(c.contest_id, c);
  card(c);
  if (selected === null && c.counties.length) select(c.contest_id);
  else if (selected === c.contest_id) countyTable();
  const when = new Date(c.last_updated).toLocaleTimeString();
  document.getElementById("status").textContent = `${contests.size} races · last update ${when}`;
}

let polling = null;
function poll() {
  if (polling) return;
  let etag = null;
  const once = () => fetch("/live/contests" + query, { headers: etag ? { "If-None-Match": etag } : {} })
    .then(r => {
      if (r.status === 304) return null;
      etag = r.headers.get("ETag");
      return r.json();
    })
    .then(body => body && body.contests.forEach(update))
    .catch(() => { document.getElementById("status").textContent = "Reconnecting…"; });
  once();
  polling = setInterval(once, 5000);
}

if ("EventSource" in window) {
  const source = new EventSource("/live/events" + query);
  source.addEventListener("contest", e => update(JSON.parse(e.data)));
  source.onerror = () => {
    document.getElementById("status").textContent = "Connection lost; retrying…";
    if (source.readyState === EventSource.CLOSED) poll();
  };
} else {
  poll();
}
