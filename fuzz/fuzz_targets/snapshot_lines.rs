//! One line of a snapshot table, decoded as the snapshot reader does (the
//! first byte chooses the table), and a user cache value as the snapshot and
//! Redis adapters read it.
#![no_main]
use exhaust_sources::fuzzing::{TABLES, decode_line, user_entry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((choice, line)) = data.split_first() else {
        return;
    };
    let _ = decode_line(TABLES[usize::from(*choice) % TABLES.len()], line);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(line) {
        let _ = user_entry(value);
    }
});
