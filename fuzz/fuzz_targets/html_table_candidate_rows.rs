#![no_main]
//! Fuzz target for the `html-table` transformer: any input must end in cells or a
//! typed error, never a panic, a hang or unbounded memory.

use libfuzzer_sys::fuzz_target;
use votewire_transformers::{FamilyInputs, PayloadContext, transform};

const MAPPING: &str = include_str!("../../deploy/mappings/txsos-summary.toml");

fuzz_target!(|data: &[u8]| {
    let ctx = PayloadContext::for_file("fuzz", "ALL.json", "00", 0);
    let mapping: toml::Table = toml::from_str(MAPPING).expect("shipped mapping parses");
    let inputs = FamilyInputs {
        mapping: Some(&mapping),
        companion: None,
    };
    let _ = transform("html-table", data, &ctx, &inputs);
});
