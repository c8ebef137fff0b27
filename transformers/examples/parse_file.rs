//! Parses one file with one family, repeatedly, and prints the times: the
//! command-line twin of the criterion benches, for `bench/` scripts,
//! `valgrind --tool=callgrind` (instruction counts do not drift with machine
//! load) and side-by-side runs against other parsers.
//!
//! ```text
//! cargo run --release -p votewire-transformers --example parse_file -- \
//!     clarity-xml ../shared/fixtures/clarity_enr/openelections-data-ga_raw_xml/20180522__ga__primary.xml 50
//! ```
//!
//! Prints `family=… file=… bytes=… cells=… runs=… min_ms=… median_ms=…`.

use std::time::Instant;

use votewire_transformers::{FamilyInputs, PayloadContext, transform};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [family, path, rest @ ..] = args.as_slice() else {
        eprintln!("usage: parse_file FAMILY FILE [RUNS]");
        std::process::exit(64);
    };
    let runs: usize = rest
        .first()
        .map_or(Ok(20), |r| r.parse())
        .unwrap_or_else(|e| {
            eprintln!("RUNS: {e}");
            std::process::exit(64);
        });
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(66);
    });
    let ctx = PayloadContext::for_file("parse_file", "parse_file", "00", 0);
    let mut times = Vec::with_capacity(runs);
    let mut cells = 0;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let out = match transform(family, &bytes, &ctx, &FamilyInputs::default()) {
            Ok(out) => out,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(65);
            }
        };
        times.push(t.elapsed().as_secs_f64() * 1e3);
        cells = out.cells.len();
        drop(std::hint::black_box(out));
    }
    times.sort_by(f64::total_cmp);
    println!(
        "family={family} file={path} bytes={} cells={cells} runs={} min_ms={:.3} median_ms={:.3}",
        bytes.len(),
        times.len(),
        times[0],
        times[times.len() / 2]
    );
}
