//! The request's `encryption_key`, as Sunbird stores it (reference 3.5).
//!
//! Sunbird's course service encrypts the key a user submits before it is
//! stored in `job_request.encryption_key`, and the exhaust job decodes it
//! (`DecryptUtil`) before using it as a zip password or a text key. Both
//! sides use AES-128/ECB/PKCS5 with a key fixed in Sunbird's source,
//! `ThisAsISerceKtey`, applied three times, each round salted with the
//! deployment's `sunbird_encryption_key` as a text prefix.
//!
//! This is obfuscation, not protection: the AES key is public. It is kept
//! only so that keys stored by Sunbird's API keep working here.

use aes::Aes128;
use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The AES-128 key of Sunbird's `DecryptUtil` and `EncryptionService`
/// (field `keyValue`). Public, in Sunbird's source.
const SUNBIRD_AES_KEY: [u8; 16] = *b"ThisAsISerceKtey";

/// Rounds of salting and encryption (`ITERATIONS`).
const ROUNDS: usize = 3;

/// Decodes a stored `encryption_key` as Sunbird's `DecryptUtil` does: three
/// rounds of base64-decode, AES/ECB/PKCS5 decrypt, and dropping the first
/// `sunbird_encryption_key.chars().count()` characters (the salt prefix).
///
/// Any failure (not base64, not a whole number of AES blocks, bad padding,
/// not UTF-8, shorter than the salt) returns `stored` unchanged, so a key
/// that was stored in plain text passes through as it is. Whitespace inside
/// the base64 text (the line breaks of older Java encoders) is ignored.
///
/// ```
/// use exhaust_writer::{decode_encryption_key, encode_encryption_key};
///
/// let stored = encode_encryption_key("batch-key-1", "salt");
/// assert_eq!(decode_encryption_key(&stored, "salt"), "batch-key-1");
/// assert_eq!(decode_encryption_key("plain key", "salt"), "plain key");
/// ```
pub fn decode_encryption_key(stored: &str, sunbird_encryption_key: &str) -> String {
    try_decode(stored, sunbird_encryption_key).unwrap_or_else(|| stored.to_owned())
}

fn try_decode(stored: &str, salt: &str) -> Option<String> {
    // DecryptUtil returns blank values as they are.
    if stored.trim().is_empty() {
        return None;
    }
    let salt_chars = salt.chars().count();
    let mut value = stored.trim().to_owned();
    for _ in 0..ROUNDS {
        let text: String = value.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let bytes = STANDARD.decode(text).ok()?;
        let plain = ecb::Decryptor::<Aes128>::new((&SUNBIRD_AES_KEY).into())
            .decrypt_padded_vec::<Pkcs7>(&bytes)
            .ok()?;
        let plain = String::from_utf8(plain).ok()?;
        if plain.chars().count() < salt_chars {
            return None;
        }
        value = plain.chars().skip(salt_chars).collect();
    }
    Some(value)
}

/// Encodes a key as Sunbird's course service does before storing it (its
/// `EncryptionService`): three rounds of prefixing `sunbird_encryption_key`,
/// AES/ECB/PKCS5 encryption and standard base64. The inverse of
/// [`decode_encryption_key`]; used by tests and by clients that submit
/// requests the way Sunbird's API does.
pub fn encode_encryption_key(plain: &str, sunbird_encryption_key: &str) -> String {
    let mut value = plain.to_owned();
    for _ in 0..ROUNDS {
        let salted = format!("{sunbird_encryption_key}{value}");
        let cipher = ecb::Encryptor::<Aes128>::new((&SUNBIRD_AES_KEY).into())
            .encrypt_padded_vec::<Pkcs7>(salted.as_bytes());
        value = STANDARD.encode(cipher);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: &str = "a-deployment-salt-0123456789";

    #[test]
    fn round_trips() {
        for plain in [
            "k",
            "batch-key-1",
            "with spaces and ünïcödé",
            &"x".repeat(300),
        ] {
            let stored = encode_encryption_key(plain, SALT);
            assert_ne!(stored, plain);
            assert_eq!(decode_encryption_key(&stored, SALT), plain);
        }
        // An empty salt is a valid configuration too.
        let stored = encode_encryption_key("k2", "");
        assert_eq!(decode_encryption_key(&stored, ""), "k2");
    }

    #[test]
    fn known_answers_from_an_independent_implementation() {
        // Computed with Python's `cryptography` (AES-128-ECB, PKCS7, three
        // rounds of salt prefix and base64), not with this code.
        let stored = "wZkN4E0Ym1KutHcfUaQg0RoDVQwElYJrlrPkuJCQcXDWoQAj79OQpAaLwZ7W00bmTQtMGOn7lhkDdxs1iV8l8A==";
        assert_eq!(encode_encryption_key("secret", "salt"), stored);
        assert_eq!(decode_encryption_key(stored, "salt"), "secret");
        let stored = concat!(
            "esg9j3x6+Dhn7yYotpTYThrZrG03etkH8OsS2q/tpF9Y7H0AVTs6Eut03i1oYo92gA2YSDIcjUj13je67hrYluo08",
            "FhWfLy69T5fVQMyZHijWp2j+VcFeAYGSPNF7iOAzIh61EeFUyh81yp8Bk7fP0DjWCffbJ2xBA6eC9cdxKC/IgYlBo",
            "VpocD4ow3yEigOgTBGdYoiom0trpfpw86SyQ=="
        );
        assert_eq!(encode_encryption_key("batch-key-1", SALT), stored);
        assert_eq!(decode_encryption_key(stored, SALT), "batch-key-1");
    }

    #[test]
    fn plain_keys_pass_through() {
        for plain in [
            "",
            "   ",
            "my-password",
            "c2VjcmV0",                 // base64, but not a whole AES block
            "AAAAAAAAAAAAAAAAAAAAAA==", // one block of zeros: bad padding
            "not base64 at all!",
        ] {
            assert_eq!(decode_encryption_key(plain, SALT), plain);
        }
    }

    #[test]
    fn the_wrong_salt_leaves_the_value_as_stored() {
        let stored = encode_encryption_key("batch-key-1", SALT);
        // A longer salt than the decrypted text fails the first round.
        let long = "s".repeat(400);
        assert_eq!(decode_encryption_key(&stored, &long), stored);
        // A shorter salt strips too little, so the next round's base64 fails.
        assert_eq!(decode_encryption_key(&stored, "short"), stored);
    }

    #[test]
    fn line_breaks_and_surrounding_space_are_tolerated() {
        let stored = encode_encryption_key("batch-key-1", SALT);
        let wrapped: String = stored
            .as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("\r\n");
        assert_eq!(
            decode_encryption_key(&format!("  {wrapped}\n"), SALT),
            "batch-key-1"
        );
    }
}
