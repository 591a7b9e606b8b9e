//! A stored request's `request_data` (`RequestData::parse`) and
//! `processed_batches` (`ProcessedBatches::read`), as the runner reads them:
//! any text reads without a panic, and what it writes back reads the same.
#![no_main]
use exhaust_core::request::{ProcessedBatches, RequestData};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        for limit in [0, 1, 20, usize::MAX] {
            let _ = RequestData::parse(&value, limit);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let read = ProcessedBatches::read(text.to_owned());
        if let ProcessedBatches::Listed(_) = &read {
            assert_eq!(ProcessedBatches::read(read.to_text()), read);
        }
    }
});
