#![no_main]
//! Fuzz target for the `clarity-xml` transformer: any input must end in cells or a
//! typed error, never a panic, a hang or unbounded memory.

use libfuzzer_sys::fuzz_target;
use votewire_transformers::{FamilyInputs, PayloadContext, transform};

fuzz_target!(|data: &[u8]| {
    let ctx = PayloadContext::for_file("fuzz", "ALL.json", "00", 0);
    let inputs = FamilyInputs {
        mapping: None,
        companion: None,
    };
    let _ = transform("clarity-xml", data, &ctx, &inputs);
});
