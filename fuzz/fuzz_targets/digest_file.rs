//! Any bytes as a persisted digest (`.exhaust-index/*.dig`): its header,
//! trailer and run index checked as the snapshot reader loads one, then its
//! runs decoded as each of the four digested tables' records and their rows
//! converted (the first byte: whether the file's checksum and each run's
//! are put right first, as a crafted file would have them).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = exhaust_sources::fuzzing::digest_file(data);
});
