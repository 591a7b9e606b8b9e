//! A stored request's `request_data` (`RequestData::parse`) and
//! `processed_batches` (`parse_processed`), as the runner reads them.
#![no_main]
use exhaust_core::request::{RequestData, parse_processed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        for limit in [0, 1, 20, usize::MAX] {
            let _ = RequestData::parse(&value, limit);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_processed(Some(text));
    }
});
