//! Sunbird's encrypted envelope (reference 3.4), for the two encrypted
//! security levels: `TEXT_KEY_ENCRYPTED_DATASET` and
//! `PUBLIC_KEY_ENCRYPTED_DATASET`.
//!
//! ```text
//! <level name>\n
//! <base64 of the wrapped 32-byte file key>\n
//! <AES-256-CBC/PKCS7 ciphertext of the CSV, zero IV, raw bytes>
//! ```
//!
//! Each file gets a fresh random AES-256 key. With a text key, that file
//! key is wrapped with AES-256-CBC/PKCS7 (zero IV) under the 32 ASCII bytes
//! of the upper-case hex MD5 of the text key; with a public key, it is
//! wrapped with RSA PKCS#1 v1.5. This is byte-compatible with Sunbird's
//! `EncryptFileUtil`, so files open with the tools Sunbird's users already
//! have, and `tests/decrypt_envelope.py` opens them with nothing but
//! Python's `cryptography`.
//!
//! The format has no integrity check (no MAC), and the zero IV is safe only
//! because every file key is used once. A wrong key is still detected: the
//! unwrapped file key must be exactly 32 bytes and the body's padding must
//! be valid. [`decrypt`] streams the plaintext as it goes and finds a bad
//! body only at its end, so callers write to a temporary file and keep it
//! only on `Ok` (as `exhaust decrypt` does).
//!
//! Bodies are streamed in 64 KiB blocks: CSVs of any size use constant
//! memory.

use aes::Aes256;
use aes::cipher::array::Array;
use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use exhaust_core::security::SecurityLevel;
use md5::{Digest, Md5};
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::{PrivateKey, PublicKey};
use std::fmt;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};

type CbcEnc = cbc::Encryptor<Aes256>;
type CbcDec = cbc::Decryptor<Aes256>;

/// AES block size.
const BLOCK: usize = 16;
/// Bytes of body encrypted or decrypted per step (a multiple of [`BLOCK`]).
const CHUNK: usize = 64 * 1024;
/// The file key: AES-256.
const FILE_KEY_LEN: usize = 32;
/// Both Sunbird and we use an all-zero IV (each file key encrypts one body).
const ZERO_IV: [u8; BLOCK] = [0; BLOCK];
/// Longest level line accepted when reading (the longest name is 28 bytes).
const MAX_LEVEL_LINE: u64 = 64;
/// Longest wrapped-key line accepted when reading: base64 of a 16384-bit
/// RSA block, with room to spare.
const MAX_KEY_LINE: u64 = 4096;

/// What opens an envelope: the text key a request was made with (decoded,
/// see [`decode_encryption_key`](crate::decode_encryption_key)), or the
/// org's RSA private key. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The text key of a `TEXT_KEY_ENCRYPTED_DATASET` file.
    TextKey(String),
    /// The PEM text of an RSA private key (PKCS#8 `BEGIN PRIVATE KEY` or
    /// PKCS#1 `BEGIN RSA PRIVATE KEY`, unencrypted) for a
    /// `PUBLIC_KEY_ENCRYPTED_DATASET` file.
    PrivateKeyPem(String),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TextKey(_) => f.write_str("TextKey(<redacted>)"),
            Self::PrivateKeyPem(_) => f.write_str("PrivateKeyPem(<redacted>)"),
        }
    }
}

/// Why an envelope could not be written or opened. Messages name the
/// problem, never the key.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Reading the input or writing the output failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The text key is empty: a missing key read as "", not a key.
    #[error("empty text key: a TEXT_KEY_ENCRYPTED_DATASET file needs the request's key")]
    EmptyTextKey,
    /// The public key is not an RSA public key in PEM.
    #[error("not an RSA public key (PEM, BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY): {0}")]
    PublicKey(String),
    /// The private key is not an unencrypted RSA private key in PEM.
    #[error(
        "not an unencrypted RSA private key (PEM, BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY): {0}"
    )]
    PrivateKey(String),
    /// RSA could not wrap the file key (a key too small for PKCS#1 v1.5).
    #[error("wrapping the file key with the public key: {0}")]
    Wrap(String),
    /// The input does not start with an encrypted level's name.
    #[error(
        "not an encrypted report: the first line is not TEXT_KEY_ENCRYPTED_DATASET or PUBLIC_KEY_ENCRYPTED_DATASET"
    )]
    NotAnEnvelope,
    /// The envelope is of the other encrypted level than the secret given.
    #[error("the file is {level}: {needs}")]
    SecretMismatch {
        /// The envelope's level.
        level: SecurityLevel,
        /// What opens it.
        needs: &'static str,
    },
    /// The envelope is cut short or its header is not well formed.
    #[error("damaged encrypted report: {0}")]
    Damaged(&'static str),
    /// The file key does not unwrap with this secret.
    #[error("wrong key: the {0} does not open this file")]
    WrongKey(&'static str),
    /// The file key unwrapped but the body does not decrypt to valid
    /// padding: the file is damaged or, rarely, the key is wrong.
    #[error("the encrypted body does not decrypt: a wrong key or a damaged file")]
    BadBody,
}

impl EnvelopeError {
    fn io(action: &'static str, source: io::Error) -> Self {
        Self::Io { action, source }
    }
}

/// Writes `input` (a CSV) to `output` as a `TEXT_KEY_ENCRYPTED_DATASET`
/// envelope whose file key is wrapped with `key`, the request's decoded
/// text key. Returns the bytes written.
///
/// # Errors
/// [`EnvelopeError::EmptyTextKey`] for an empty key; I/O failures.
pub fn encrypt_text_key<R: Read, W: Write>(
    input: R,
    output: W,
    key: &str,
) -> Result<u64, EnvelopeError> {
    if key.is_empty() {
        return Err(EnvelopeError::EmptyTextKey);
    }
    let file_key = new_file_key();
    let wrapped = CbcEnc::new(&text_wrapping_key(key).into(), &ZERO_IV.into())
        .encrypt_padded_vec::<Pkcs7>(&file_key);
    write_envelope(
        input,
        output,
        SecurityLevel::TextKeyEncrypted,
        &wrapped,
        &file_key,
    )
}

/// Writes `input` (a CSV) to `output` as a `PUBLIC_KEY_ENCRYPTED_DATASET`
/// envelope whose file key is wrapped (RSA PKCS#1 v1.5) with `pem`, the
/// org's public key (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`). Returns
/// the bytes written.
///
/// # Errors
/// [`EnvelopeError::PublicKey`] when `pem` is not an RSA public key;
/// [`EnvelopeError::Wrap`]; I/O failures.
pub fn encrypt_public_key<R: Read, W: Write>(
    input: R,
    output: W,
    pem: &str,
) -> Result<u64, EnvelopeError> {
    let public = parse_public_key(pem)?;
    let file_key = new_file_key();
    let wrapped = public
        .pkcs1v15_encrypt(&file_key)
        .map_err(|e| EnvelopeError::Wrap(e.to_string()))?;
    write_envelope(
        input,
        output,
        SecurityLevel::PublicKeyEncrypted,
        &wrapped,
        &file_key,
    )
}

/// Decrypts the envelope read from `input` into `output` (the CSV) and
/// returns the bytes of CSV written.
///
/// Plaintext is written as it is decrypted; a damaged body is found only at
/// its end. On `Err`, whatever reached `output` must be discarded.
///
/// # Errors
/// [`EnvelopeError::NotAnEnvelope`], [`EnvelopeError::SecretMismatch`]
/// (a text key for a public-key file or the reverse),
/// [`EnvelopeError::PrivateKey`], [`EnvelopeError::Damaged`] (a bad header,
/// a truncated body), [`EnvelopeError::WrongKey`], [`EnvelopeError::BadBody`],
/// I/O failures.
pub fn decrypt<R: Read, W: Write>(
    input: R,
    mut output: W,
    secret: &Secret,
) -> Result<u64, EnvelopeError> {
    let mut input = BufReader::with_capacity(CHUNK, input);
    let level = read_line(&mut input, MAX_LEVEL_LINE, EnvelopeError::NotAnEnvelope)?;
    let level = std::str::from_utf8(&level)
        .ok()
        .and_then(|l| l.trim_end_matches('\r').parse::<SecurityLevel>().ok())
        .ok_or(EnvelopeError::NotAnEnvelope)?;
    let wrapped = read_line(
        &mut input,
        MAX_KEY_LINE,
        EnvelopeError::Damaged("the wrapped key line is missing or too long"),
    )?;
    let wrapped = STANDARD
        .decode(wrapped.trim_ascii())
        .map_err(|_| EnvelopeError::Damaged("the wrapped key is not base64"))?;

    let file_key = match (level, secret) {
        (SecurityLevel::TextKeyEncrypted, Secret::TextKey(key)) => {
            if key.is_empty() {
                return Err(EnvelopeError::EmptyTextKey);
            }
            CbcDec::new(&text_wrapping_key(key).into(), &ZERO_IV.into())
                .decrypt_padded_vec::<Pkcs7>(&wrapped)
                .map_err(|_| EnvelopeError::WrongKey("text key"))?
        }
        (SecurityLevel::PublicKeyEncrypted, Secret::PrivateKeyPem(pem)) => {
            // PKCS#1 v1.5 decryption here uses implicit rejection: a wrong
            // key yields a pseudo-random message rather than an error, which
            // the length check below (and the body's padding) catch.
            parse_private_key(pem)?
                .pkcs1v15_decrypt(&wrapped)
                .map_err(|_| EnvelopeError::WrongKey("private key"))?
        }
        (SecurityLevel::TextKeyEncrypted, Secret::PrivateKeyPem(_)) => {
            return Err(EnvelopeError::SecretMismatch {
                level,
                needs: "it opens with the request's text key, not a private key",
            });
        }
        (SecurityLevel::PublicKeyEncrypted, Secret::TextKey(_)) => {
            return Err(EnvelopeError::SecretMismatch {
                level,
                needs: "it opens with the org's RSA private key, not a text key",
            });
        }
        (SecurityLevel::Plain | SecurityLevel::PasswordProtected, _) => {
            return Err(EnvelopeError::NotAnEnvelope);
        }
    };
    let file_key: [u8; FILE_KEY_LEN] =
        file_key.as_slice().try_into().map_err(|_| match secret {
            Secret::TextKey(_) => EnvelopeError::WrongKey("text key"),
            Secret::PrivateKeyPem(_) => EnvelopeError::WrongKey("private key"),
        })?;
    decrypt_body(&mut input, &mut output, &file_key)
}

/// The AES-256 key that wraps a file key under a text key: the 32 ASCII
/// characters of the upper-case hex MD5 of the key's UTF-8 bytes (Sunbird's
/// `generate32CharacterString`).
fn text_wrapping_key(key: &str) -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let digest = Md5::digest(key.as_bytes());
    let mut out = [0u8; 32];
    for (i, b) in digest.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0x0f)];
    }
    out
}

fn new_file_key() -> [u8; FILE_KEY_LEN] {
    let mut key = [0u8; FILE_KEY_LEN];
    rand::fill(&mut key);
    key
}

fn write_envelope<R: Read, W: Write>(
    mut input: R,
    mut output: W,
    level: SecurityLevel,
    wrapped: &[u8],
    file_key: &[u8; FILE_KEY_LEN],
) -> Result<u64, EnvelopeError> {
    let header = format!("{}\n{}\n", level.as_str(), STANDARD.encode(wrapped));
    output
        .write_all(header.as_bytes())
        .map_err(|e| EnvelopeError::io("writing the envelope header", e))?;
    let body = encrypt_body(&mut input, &mut output, file_key)?;
    output
        .flush()
        .map_err(|e| EnvelopeError::io("flushing the envelope", e))?;
    Ok(header.len() as u64 + body)
}

fn encrypt_body<R: Read, W: Write>(
    input: &mut R,
    output: &mut W,
    key: &[u8; FILE_KEY_LEN],
) -> Result<u64, EnvelopeError> {
    let mut cipher = CbcEnc::new(key.into(), &ZERO_IV.into());
    // Room for one block of padding after a full chunk.
    let mut buf = vec![0u8; CHUNK + BLOCK];
    let mut written = 0u64;
    let last = loop {
        let n = fill(input, &mut buf[..CHUNK])?;
        if n < CHUNK {
            break n;
        }
        let (blocks, _) = Array::slice_as_chunks_mut(&mut buf[..CHUNK]);
        cipher.encrypt_blocks(blocks);
        output
            .write_all(&buf[..CHUNK])
            .map_err(|e| EnvelopeError::io("writing the encrypted body", e))?;
        written += CHUNK as u64;
    };
    let tail = cipher
        .encrypt_padded::<Pkcs7>(&mut buf, last)
        // The buffer always has a block to spare for the padding.
        .map_err(|_| EnvelopeError::Damaged("internal: no room for padding"))?;
    output
        .write_all(tail)
        .map_err(|e| EnvelopeError::io("writing the encrypted body", e))?;
    Ok(written + tail.len() as u64)
}

fn decrypt_body<R: Read, W: Write>(
    input: &mut R,
    output: &mut W,
    key: &[u8; FILE_KEY_LEN],
) -> Result<u64, EnvelopeError> {
    let mut cipher = CbcDec::new(key.into(), &ZERO_IV.into());
    // A chunk plus the block held back: the last block carries the padding,
    // and which block is last is known only at the end of the input.
    let mut buf = vec![0u8; CHUNK + BLOCK];
    let mut filled = 0;
    let mut written = 0u64;
    loop {
        let n = fill(input, &mut buf[filled..])?;
        filled += n;
        if filled < buf.len() {
            break;
        }
        let (blocks, _) = Array::slice_as_chunks_mut(&mut buf[..CHUNK]);
        cipher.decrypt_blocks(blocks);
        output
            .write_all(&buf[..CHUNK])
            .map_err(|e| EnvelopeError::io("writing the decrypted CSV", e))?;
        written += CHUNK as u64;
        buf.copy_within(CHUNK.., 0);
        filled = BLOCK;
    }
    if filled == 0 || filled % BLOCK != 0 {
        return Err(EnvelopeError::Damaged(
            "the encrypted body is not a whole number of AES blocks (truncated?)",
        ));
    }
    let tail = cipher
        .decrypt_padded::<Pkcs7>(&mut buf[..filled])
        .map_err(|_| EnvelopeError::BadBody)?;
    output
        .write_all(tail)
        .map_err(|e| EnvelopeError::io("writing the decrypted CSV", e))?;
    output
        .flush()
        .map_err(|e| EnvelopeError::io("flushing the decrypted CSV", e))?;
    Ok(written + tail.len() as u64)
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn fill<R: Read>(input: &mut R, buf: &mut [u8]) -> Result<usize, EnvelopeError> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(EnvelopeError::io("reading the input", e)),
        }
    }
    Ok(filled)
}

/// One header line without its `\n`, at most `max` bytes; `missing` when
/// the input ends first or the line is longer (a file that is not an
/// envelope must not be read whole looking for a newline).
fn read_line<R: BufRead>(
    input: &mut R,
    max: u64,
    missing: EnvelopeError,
) -> Result<Vec<u8>, EnvelopeError> {
    let mut line = Vec::new();
    input
        .take(max + 1)
        .read_until(b'\n', &mut line)
        .map_err(|e| EnvelopeError::io("reading the envelope header", e))?;
    if line.pop() != Some(b'\n') {
        return Err(missing);
    }
    Ok(line)
}

/// The base64 body of a PEM text, whatever its label and line lengths, or
/// the text itself when it has no armour (Sunbird's Java reader strips the
/// armour and line breaks the same lenient way).
fn pem_der(pem: &str) -> Result<Vec<u8>, String> {
    if pem.contains("ENCRYPTED") {
        return Err("encrypted keys are not supported; decrypt it first \
             (openssl pkey -in KEY -out PLAIN)"
            .into());
    }
    let b64: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----") && !l.contains(':'))
        .flat_map(|l| l.chars().filter(|c| !c.is_ascii_whitespace()))
        .collect();
    if b64.is_empty() {
        return Err("no key data".into());
    }
    STANDARD
        .decode(b64)
        .map_err(|e| format!("the PEM body is not base64: {e}"))
}

fn parse_public_key(pem: &str) -> Result<PublicKey, EnvelopeError> {
    let der = pem_der(pem).map_err(EnvelopeError::PublicKey)?;
    PublicKey::from_public_key_der(&der)
        .or_else(|spki| {
            PublicKey::from_pkcs1_der(&der)
                .map_err(|pkcs1| format!("as SubjectPublicKeyInfo: {spki}; as PKCS#1: {pkcs1}"))
        })
        .map_err(EnvelopeError::PublicKey)
}

fn parse_private_key(pem: &str) -> Result<PrivateKey, EnvelopeError> {
    let der = pem_der(pem).map_err(EnvelopeError::PrivateKey)?;
    PrivateKey::from_pkcs8_der(&der)
        .or_else(|pkcs8| {
            PrivateKey::from_pkcs1_der(&der)
                .map_err(|pkcs1| format!("as PKCS#8: {pkcs8}; as PKCS#1: {pkcs1}"))
        })
        .map_err(EnvelopeError::PrivateKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrapping_key_is_the_upper_case_hex_md5() {
        // md5("password") = 5f4dcc3b5aa765d61d8327deb882cf99
        assert_eq!(
            &text_wrapping_key("password"),
            b"5F4DCC3B5AA765D61D8327DEB882CF99"
        );
    }

    #[test]
    fn bodies_of_every_length_round_trip() {
        // Around the block and chunk boundaries, where streaming can slip.
        for len in [
            0,
            1,
            15,
            16,
            17,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            CHUNK + 15,
            CHUNK + 16,
            2 * CHUNK,
            2 * CHUNK + 5,
        ] {
            let csv: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let key = [7u8; FILE_KEY_LEN];
            let mut enc = Vec::new();
            let n = encrypt_body(&mut &csv[..], &mut enc, &key).expect("encrypt");
            assert_eq!(n, enc.len() as u64);
            assert_eq!(enc.len(), (len / BLOCK + 1) * BLOCK, "len {len}");
            let mut dec = Vec::new();
            let n = decrypt_body(&mut &enc[..], &mut dec, &key).expect("decrypt");
            assert_eq!(n, len as u64);
            assert!(dec == csv, "len {len}");
        }
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let s = format!(
            "{:?} {:?}",
            Secret::TextKey("hunter2".into()),
            Secret::PrivateKeyPem("-----BEGIN".into())
        );
        assert!(!s.contains("hunter2") && !s.contains("BEGIN"), "{s}");
    }
}
