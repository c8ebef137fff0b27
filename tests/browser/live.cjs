// The /live page in Debian's headless Chromium, driven by playwright-core.
//
//   node tests/browser/live.cjs <page url> <screenshot.png>
//
// Opens the page once, marks the window (a reload would lose the mark),
// then reads the race cards' numbers every 200 ms until stdin closes (the
// test closes it when the replay is over). Then it picks a race's
// "Counties" button from the keyboard, saves a screenshot and prints one
// JSON line:
//   {"marker_kept": true, "distinct_states": N, "final": {contest: {choice: votes}},
//    "county_table": {"contest_id": "...", "asked_for": "...", "units": {unit: {choice: votes}}},
//    "errors": [uncaught exceptions], "console_errors": [...]}
// VOTEWIRE_BROWSER_MODULES names the node_modules holding playwright-core
// and VOTEWIRE_CHROMIUM the browser (deploy/local/stack installs both).
"use strict";
const path = require("path");

const [url, screenshot] = process.argv.slice(2);
const modules = process.env.VOTEWIRE_BROWSER_MODULES;
const executablePath = process.env.VOTEWIRE_CHROMIUM || "/usr/bin/chromium";
if (!url || !screenshot || !modules) {
  console.error("usage: VOTEWIRE_BROWSER_MODULES=… node live.cjs <url> <screenshot.png>");
  process.exit(2);
}
const { chromium } = require(path.join(modules, "playwright-core"));

const readCards = () => {
  const out = {};
  for (const art of document.querySelectorAll("#races article[data-contest-id]")) {
    const choices = {};
    for (const tr of art.querySelectorAll("tbody tr[data-choice-id]")) {
      choices[tr.dataset.choiceId] = Number(tr.querySelector("td.votes").dataset.votes);
    }
    out[art.dataset.contestId] = choices;
  }
  return out;
};

(async () => {
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    // As root, with no network beyond 127.0.0.1: no sandbox, and none of
    // Chromium's own background connections.
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const errors = [];      // uncaught exceptions in the page
  const console_errors = []; // e.g. the stream refused once the replay's API stops
  const page = await browser.newPage({ viewport: { width: 1280, height: 1600 } });
  page.on("pageerror", e => errors.push(String(e)));
  page.on("console", m => { if (m.type() === "error") console_errors.push(m.text()); });
  await page.goto(url, { waitUntil: "domcontentloaded" });
  await page.evaluate(() => { window.__votewireMark = "set before the replay"; });

  let stdinOpen = true;
  process.stdin.on("end", () => { stdinOpen = false; });
  process.stdin.on("close", () => { stdinOpen = false; });
  process.stdin.resume();

  const seen = new Set();
  let last = {};
  while (stdinOpen) {
    last = await page.evaluate(readCards);
    if (Object.keys(last).length) seen.add(JSON.stringify(last));
    await new Promise(r => setTimeout(r, 200));
  }
  last = await page.evaluate(readCards);
  if (Object.keys(last).length) seen.add(JSON.stringify(last));
  const markerKept = await page.evaluate(() => window.__votewireMark === "set before the replay");

  // The keyboard path: focus the last race's Counties button, press Enter.
  const ids = Object.keys(last);
  const target = ids[ids.length - 1];
  let countyTable = null;
  if (target) {
    await page.focus(`article[data-contest-id="${target}"] button`);
    await page.keyboard.press("Enter");
    countyTable = await page.evaluate(() => {
      const t = document.getElementById("counties");
      const units = {};
      for (const tr of t.tBodies[0].rows) {
        const votes = {};
        for (const td of tr.querySelectorAll("td[data-choice-id]")) {
          if (td.dataset.votes !== "") votes[td.dataset.choiceId] = Number(td.dataset.votes);
        }
        units[tr.dataset.unitId] = votes;
      }
      return { contest_id: t.dataset.contestId || null, units };
    });
    countyTable.asked_for = target;
  }
  await page.screenshot({ path: screenshot, fullPage: true });
  await browser.close();
  console.log(JSON.stringify({
    marker_kept: markerKept,
    distinct_states: seen.size,
    final: last,
    county_table: countyTable,
    errors,
    console_errors,
  }));
})().catch(e => { console.error(e); process.exit(1); });
