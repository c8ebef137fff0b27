#![no_main]
//! Fuzz target for the `clarity-json` transformer: any input must end in cells or a
//! typed error, never a panic, a hang or unbounded memory.

use libfuzzer_sys::fuzz_target;
use votewire_transformers::{FamilyInputs, PayloadContext, transform};

const COMPANION: &[u8] = include_bytes!("../../deploy/demo/clarity-GA-107556-companion.json");

fuzz_target!(|data: &[u8]| {
    let ctx = PayloadContext::for_file("fuzz", "ALL.json", "00", 0);
    let inputs = FamilyInputs {
        mapping: None,
        companion: Some(COMPANION),
    };
    let _ = transform("clarity-json", data, &ctx, &inputs);
});
