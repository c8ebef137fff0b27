//! Criterion benches for the transformers and the VoteCell hot path.
//!
//! Run: `cargo bench -p votewire-transformers --bench transformers`
//! Figures and the machine are recorded in BENCHMARKS.md.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use votewire_schemas::{codec, schemas};
use votewire_transformers::{FamilyInputs, PayloadContext, transform};

fn fixture(relative: &str) -> Vec<u8> {
    let base = std::env::var_os("VOTEWIRE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"));
    let path = base.join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {} is missing: {e}", path.display()))
}

fn ctx() -> PayloadContext {
    PayloadContext::for_file("bench", "bench", "00", 0)
}

const GA_2018: &str = "clarity_enr/openelections-data-ga_raw_xml/20180522__ga__primary.xml";

fn clarity_xml(c: &mut Criterion) {
    let bytes = fixture(GA_2018);
    let mut g = c.benchmark_group("clarity-xml");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("GA 2018 primary detail.xml (3.95 MB, 51,444 cells)", |b| {
        b.iter(|| {
            let out = transform(
                "clarity-xml",
                black_box(&bytes),
                &ctx(),
                &FamilyInputs::default(),
            )
            .unwrap();
            assert_eq!(out.cells.len(), 51_444);
            out
        })
    });
    g.finish();
}

fn vote_cell_encode(c: &mut Criterion) {
    let bytes = fixture(GA_2018);
    let cells = transform("clarity-xml", &bytes, &ctx(), &FamilyInputs::default())
        .unwrap()
        .cells
        .to_vec();
    let s = &schemas().vote_cell;
    let mut g = c.benchmark_group("VoteCell encode");
    g.throughput(Throughput::Elements(cells.len() as u64));
    g.bench_function("fast encoder, 51,444 cells into a reused buffer", |b| {
        let mut buf = Vec::with_capacity(512);
        b.iter(|| {
            let mut total = 0;
            for cell in &cells {
                buf.clear();
                codec::encode_vote_cell(black_box(cell), s.id, &mut buf);
                total += buf.len();
            }
            total
        })
    });
    // Same-run baseline: apache-avro's own encoder on the same cells, as
    // prebuilt apache-avro Values (so only encoding is timed).
    let values: Vec<apache_avro::types::Value> = cells[..1000]
        .iter()
        .map(|cell| {
            let mut fast = Vec::new();
            codec::encode_vote_cell(cell, s.id, &mut fast);
            codec::decode_value(s, &fast).unwrap()
        })
        .collect();
    g.throughput(Throughput::Elements(values.len() as u64));
    g.sample_size(20);
    g.bench_function("apache-avro to_avro_datum (baseline), 1,000 cells", |b| {
        b.iter(|| {
            let mut total = 0;
            for v in &values {
                total += apache_avro::to_avro_datum(&s.schema, black_box(v.clone()))
                    .unwrap()
                    .len();
            }
            total
        })
    });
    g.finish();
}

fn co_csv(c: &mut Criterion) {
    let zip = fixture("precinct_csv/CO_SOS_2024G_rlauxe/2024GeneralPrecinctLevelResults.zip");
    let mut csv = Vec::new();
    std::io::Read::read_to_end(
        &mut zip::ZipArchive::new(std::io::Cursor::new(&zip[..]))
            .unwrap()
            .by_index(0)
            .unwrap(),
        &mut csv,
    )
    .unwrap();
    let mut g = c.benchmark_group("csv");
    g.throughput(Throughput::Bytes(csv.len() as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function(
        "CO 2024 statewide precinct CSV (24.2 MB, 283,724 cells)",
        |b| {
            b.iter_with_large_drop(|| {
                transform("csv", black_box(&csv), &ctx(), &FamilyInputs::default()).unwrap()
            })
        },
    );
    g.bench_function(
        "CO 2024 statewide zip, inflate included (1.7 MB zip)",
        |b| {
            b.iter_with_large_drop(|| {
                transform("csv", black_box(&zip), &ctx(), &FamilyInputs::default()).unwrap()
            })
        },
    );
    g.finish();
}

criterion_group!(benches, clarity_xml, co_csv, vote_cell_encode);
criterion_main!(benches);
