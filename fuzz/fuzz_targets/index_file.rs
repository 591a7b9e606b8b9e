//! Any bytes as a persisted offset index file (`.exhaust-index/*.idx`), read
//! back as the snapshot reader reads one (the first byte: whether the
//! file's checksum is put right first, as a crafted file would have it),
//! then a few keys looked up: every run found lies within the table.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(read) = exhaust_sources::fuzzing::index_file(data) {
        for (offset, len) in read.found {
            assert!(
                offset
                    .checked_add(u64::from(len))
                    .is_some_and(|end| end <= read.data_len),
                "a run past the table was accepted"
            );
        }
    }
});
