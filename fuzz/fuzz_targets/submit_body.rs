//! The Data Exhaust API's submit body (`POST /dataset/v1/request/submit`):
//! the server's parsing, then the core's validation and the stored row.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the X-Channel-ID header: absent, empty or set.
    let (channel, body) = match data.split_first() {
        Some((b, rest)) if b % 3 == 0 => (None, rest),
        Some((b, rest)) if b % 3 == 1 => (Some(String::new()), rest),
        Some((_, rest)) => (Some("channel-01".to_owned()), rest),
        None => (None, data),
    };
    if let Ok(new) = exhaust_server::api::parse_submit_for_fuzzing(body, channel) {
        let _ = new.validate();
        let now = chrono::DateTime::from_timestamp(1_764_115_200, 0).unwrap_or_default();
        let _ = new.into_job_request(now);
    }
});
