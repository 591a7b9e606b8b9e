//! The zip reading of `exhaust decrypt`: `read_single_entry` over any bytes,
//! reading at most 64 MiB of the entry.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::{Cursor, Read};

fuzz_target!(|data: &[u8]| {
    let _ = exhaust_writer::read_single_entry(Cursor::new(data), |_name, entry| {
        std::io::copy(&mut entry.take(64 << 20), &mut std::io::sink())
    });
});
