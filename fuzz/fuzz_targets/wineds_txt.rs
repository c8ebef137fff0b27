#![no_main]
//! Fuzz target for the `wineds-txt` transformer: any input must end in cells or a
//! typed error, never a panic, a hang or unbounded memory.

use libfuzzer_sys::fuzz_target;
use votewire_transformers::{FamilyInputs, PayloadContext, transform};

fuzz_target!(|data: &[u8]| {
    let ctx = PayloadContext::for_file("fuzz", "payload", "00", 0);
    let _ = transform("wineds-txt", data, &ctx, &FamilyInputs::default());
});
