//! Sunbird's encrypted envelope: `envelope::decrypt` of any bytes with a
//! text key and with an RSA private key (the first byte chooses), and
//! `decode_encryption_key` of any text.
#![no_main]
use exhaust_writer::envelope::{Secret, decrypt};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const PRIVATE_KEY: &str =
    include_str!("../../exhaust-writer/tests/fixtures/test-only-org-private.pem");

fn secrets() -> &'static [Secret; 2] {
    static S: OnceLock<[Secret; 2]> = OnceLock::new();
    S.get_or_init(|| {
        [
            Secret::TextKey("fuzz-text-key".to_owned()),
            Secret::PrivateKeyPem(PRIVATE_KEY.to_owned()),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((choice, input)) = data.split_first() else {
        return;
    };
    let secret = &secrets()[usize::from(*choice & 1)];
    let _ = decrypt(input, std::io::sink(), secret);
    if let Ok(text) = std::str::from_utf8(input) {
        let _ = exhaust_writer::decode_encryption_key(text, "SunbirdEncryptionKey");
        let _ = exhaust_writer::decode_encryption_key(text, "");
    }
});
