//! Any text as a local download link's token (`GET
//! /dataset/v1/download/{token}`), checked by `Downloads::verify`; the same
//! text as a stored `download_urls` entry (`object_key`) and as a key whose
//! file name is offered (`file_name`); and a token signed for the text as a
//! key, which must give the key back.
#![no_main]
use exhaust_server::download::{Downloads, Secret, file_name, object_key};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

/// The secret of the seeds' tokens (`fuzz/make_seeds.py`).
const SECRET: &[u8] = b"exhaust-fuzz-download-secret";

/// The seeds' tokens expire at 2030-01-01; "now" is 2026-11-26.
const NOW: i64 = 1_764_115_200;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let downloads = Downloads::new(
        Secret::new(SECRET.to_vec()),
        "http://exhaust.test",
        Duration::from_secs(1800),
    );
    let now = chrono::DateTime::from_timestamp(NOW, 0).unwrap_or_default();
    if let Ok(key) = downloads.verify(text, now) {
        // Only a token this secret signed grants a key: it signs it again.
        let (_, rest) = text.split_once('.').unwrap_or_default();
        let (expires, _) = rest.split_once('.').unwrap_or_default();
        let expires: i64 = expires.parse().unwrap_or_default();
        assert_eq!(
            downloads.verify(&downloads.token(&key, expires), now),
            Ok(key)
        );
    }
    let _ = object_key(text);
    let name = file_name(text);
    assert!(
        name.chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\'),
        "{name:?} could break the Content-Disposition header"
    );
    // A token signed for any key gives that key back until it expires.
    let token = downloads.token(text, NOW + 60);
    assert_eq!(downloads.verify(&token, now).as_deref(), Ok(text));
    let later = now + chrono::Duration::seconds(61);
    assert!(downloads.verify(&token, later).is_err());
});
