#![no_main]
//! Any input must load without panicking; diagnostics must point inside the text.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for d in gantry_workflow::parse_workflow("fuzz.yml", text).diagnostics {
            assert!(d.span.offset <= text.len());
        }
        let _ = gantry_workflow::parse_action("action.yml", text);
        let loaded = gantry_workflow::parse_workflow("fuzz.yml", text);
        let _ = gantry_workflow::render(&loaded.diagnostics, text);
    }
});
