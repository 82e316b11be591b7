#![no_main]

#[path = "../../tests/fuzz_harness/mod.rs"]
#[allow(dead_code)] // each target uses one function
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = harness::image_folder(data);
});
