//! Sunbird's encrypted envelope: round trips, the exact layout, rejection of
//! wrong keys and damaged files, and cross-checks with tools that share no
//! code with exhaust (`openssl` and Python's `cryptography`, through
//! `tests/decrypt_envelope.py`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use exhaust_writer::envelope::{decrypt, encrypt_public_key, encrypt_text_key};
use exhaust_writer::{EnvelopeError, Secret, WriteError, read_single_entry, write_zip};
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TEXT_KEY: &str = "batch-0130 key";

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn private_key() -> Secret {
    Secret::PrivateKeyPem(fixture("test-only-org-private.pem"))
}

/// A CSV of about 200 KB: several 64 KiB chunks and a partial block.
fn sample_csv() -> Vec<u8> {
    let mut csv = b"User ID,Name,Progress\r\n".to_vec();
    for i in 0..4000 {
        csv.extend_from_slice(format!("u-{i:05},\"Doe, नमस्ते {i}\",{}\r\n", i % 101).as_bytes());
    }
    csv
}

fn text_envelope(csv: &[u8], key: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let n = encrypt_text_key(csv, &mut out, key).expect("encrypt");
    assert_eq!(n, out.len() as u64, "returned size is the envelope's size");
    out
}

fn public_envelope(csv: &[u8], pem: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let n = encrypt_public_key(csv, &mut out, pem).expect("encrypt");
    assert_eq!(n, out.len() as u64);
    out
}

fn open(envelope: &[u8], secret: &Secret) -> Result<Vec<u8>, EnvelopeError> {
    let mut out = Vec::new();
    let n = decrypt(envelope, &mut out, secret)?;
    assert_eq!(n, out.len() as u64, "returned size is the CSV's size");
    Ok(out)
}

/// The envelope split into its level line, wrapped key and body.
fn parts(envelope: &[u8]) -> (String, Vec<u8>, Vec<u8>) {
    let first = envelope.iter().position(|&b| b == b'\n').expect("line 1");
    let second = first
        + 1
        + envelope[first + 1..]
            .iter()
            .position(|&b| b == b'\n')
            .expect("line 2");
    let level = String::from_utf8(envelope[..first].to_vec()).expect("utf-8");
    let wrapped = STANDARD
        .decode(&envelope[first + 1..second])
        .expect("standard base64 with padding");
    (level, wrapped, envelope[second + 1..].to_vec())
}

#[test]
fn text_key_round_trip_and_layout() {
    let csv = sample_csv();
    let envelope = text_envelope(&csv, TEXT_KEY);
    let (level, wrapped, body) = parts(&envelope);
    assert_eq!(level, "TEXT_KEY_ENCRYPTED_DATASET");
    assert_eq!(wrapped.len(), 48, "32-byte key + a block of padding");
    assert_eq!(body.len(), (csv.len() / 16 + 1) * 16);
    assert_eq!(
        open(&envelope, &Secret::TextKey(TEXT_KEY.into())).expect("open"),
        csv
    );

    // Every file gets its own key.
    let again = text_envelope(&csv, TEXT_KEY);
    assert_ne!(parts(&again).1, wrapped);
    assert_ne!(parts(&again).2, body);
}

#[test]
fn empty_csv_round_trips() {
    let envelope = text_envelope(b"", TEXT_KEY);
    assert_eq!(parts(&envelope).2.len(), 16, "one block of padding");
    assert_eq!(
        open(&envelope, &Secret::TextKey(TEXT_KEY.into())).expect("open"),
        b""
    );
}

#[test]
fn public_key_round_trip_in_both_key_formats() {
    let csv = sample_csv();
    for public in ["test-only-org-public.pem", "test-only-org-public-pkcs1.pem"] {
        let envelope = public_envelope(&csv, &fixture(public));
        let (level, wrapped, _) = parts(&envelope);
        assert_eq!(level, "PUBLIC_KEY_ENCRYPTED_DATASET");
        assert_eq!(wrapped.len(), 256, "one RSA-2048 block");
        for private in [
            "test-only-org-private.pem",
            "test-only-org-private-pkcs1.pem",
        ] {
            let secret = Secret::PrivateKeyPem(fixture(private));
            assert_eq!(
                open(&envelope, &secret).expect(private),
                csv,
                "{public} {private}"
            );
        }
    }
}

#[test]
fn a_wrong_text_key_is_rejected() {
    let envelope = text_envelope(&sample_csv(), TEXT_KEY);
    for wrong in ["batch-0130 kez", "BATCH-0130 KEY", "q7"] {
        let err = open(&envelope, &Secret::TextKey(wrong.into())).expect_err(wrong);
        assert!(matches!(err, EnvelopeError::WrongKey(_)), "{err:?}");
        assert!(err.to_string().contains("wrong key"), "{err}");
        assert!(
            !err.to_string().contains(wrong),
            "the key is not in the message"
        );
    }
    let err = open(&envelope, &Secret::TextKey(String::new())).expect_err("empty");
    assert!(matches!(err, EnvelopeError::EmptyTextKey), "{err:?}");
}

#[test]
fn a_wrong_private_key_is_rejected() {
    let csv = sample_csv();
    let wrong = Secret::PrivateKeyPem(fixture("test-only-other-org-private.pem"));
    // RSA PKCS#1 v1.5 decryption with implicit rejection returns a
    // pseudo-random message for a wrong key; it is caught by its length or,
    // rarely, by the body's padding. Either way it is an error.
    for _ in 0..5 {
        let envelope = public_envelope(&csv, &fixture("test-only-org-public.pem"));
        let err = open(&envelope, &wrong).expect_err("wrong private key");
        assert!(
            matches!(err, EnvelopeError::WrongKey(_) | EnvelopeError::BadBody),
            "{err:?}"
        );
    }
}

#[test]
fn the_other_kind_of_secret_is_refused_by_name() {
    let text = text_envelope(b"a,b\r\n", TEXT_KEY);
    let err = open(&text, &private_key()).expect_err("private key for a text-key file");
    assert!(err.to_string().contains("text key"), "{err}");
    let public = public_envelope(b"a,b\r\n", &fixture("test-only-org-public.pem"));
    let err = open(&public, &Secret::TextKey(TEXT_KEY.into())).expect_err("text key");
    assert!(err.to_string().contains("private key"), "{err}");
}

#[test]
fn truncated_and_garbled_files_are_rejected() {
    let csv = sample_csv();
    let envelope = text_envelope(&csv, TEXT_KEY);
    let secret = Secret::TextKey(TEXT_KEY.into());
    let header_len = envelope.len() - parts(&envelope).2.len();

    // Cut inside a block, at a block boundary, in the header, nothing left.
    for cut in [5, 16, 32 + 7] {
        let err = open(&envelope[..envelope.len() - cut], &secret).expect_err("truncated");
        assert!(
            matches!(err, EnvelopeError::Damaged(_) | EnvelopeError::BadBody),
            "cut {cut}: {err:?}"
        );
    }
    let err = open(&envelope[..header_len], &secret).expect_err("no body");
    assert!(matches!(err, EnvelopeError::Damaged(_)), "{err:?}");
    let err = open(&envelope[..header_len - 3], &secret).expect_err("cut in the key line");
    assert!(matches!(err, EnvelopeError::Damaged(_)), "{err:?}");

    // Zero the padding byte (via the previous ciphertext block): bad padding.
    let mut garbled = envelope.clone();
    let pad = (16 - csv.len() % 16) as u8;
    let at = garbled.len() - 17;
    garbled[at] ^= pad;
    assert!(matches!(
        open(&garbled, &secret),
        Err(EnvelopeError::BadBody)
    ));

    // Change the wrapped key's last block: it no longer unwraps.
    let mut garbled = envelope.clone();
    let first_newline = garbled.iter().position(|&b| b == b'\n').expect("newline");
    let at = first_newline + 1 + 50;
    garbled[at] = if garbled[at] == b'A' { b'B' } else { b'A' };
    let err = open(&garbled, &secret).expect_err("garbled key");
    assert!(matches!(err, EnvelopeError::WrongKey(_)), "{err:?}");

    // Not base64 at all.
    let mut garbled = envelope.clone();
    garbled[first_newline + 3] = b'*';
    let err = open(&garbled, &secret).expect_err("not base64");
    assert!(matches!(err, EnvelopeError::Damaged(_)), "{err:?}");
}

#[test]
fn files_that_are_not_envelopes_are_refused() {
    let secret = Secret::TextKey(TEXT_KEY.into());
    for input in [
        &b""[..],
        b"User ID,Name\r\nu1,x\r\n",
        b"PLAIN_DATASET\nAAAA\n0123456789abcdef",
        b"PK\x03\x04 a zip",
    ] {
        let err = open(input, &secret).expect_err("not an envelope");
        assert!(matches!(err, EnvelopeError::NotAnEnvelope), "{err:?}");
    }
    // A huge first line is not read whole.
    let long = vec![b'x'; 10 << 20];
    assert!(matches!(
        open(&long, &secret),
        Err(EnvelopeError::NotAnEnvelope)
    ));
}

#[test]
fn bad_keys_are_refused_when_encrypting() {
    let err = encrypt_text_key(&b"a"[..], Vec::new(), "").expect_err("empty key");
    assert!(matches!(err, EnvelopeError::EmptyTextKey));
    for pem in [
        "",
        "not a key",
        &fixture("test-only-org-private.pem"),
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    ] {
        let err = encrypt_public_key(&b"a"[..], Vec::new(), pem).expect_err("bad pem");
        assert!(matches!(err, EnvelopeError::PublicKey(_)), "{err:?}");
    }
    let err = open(
        &public_envelope(b"a", &fixture("test-only-org-public.pem")),
        &Secret::PrivateKeyPem(fixture("test-only-org-public.pem")),
    )
    .expect_err("a public key is no private key");
    assert!(matches!(err, EnvelopeError::PrivateKey(_)), "{err:?}");
}

#[test]
fn an_envelope_in_a_report_zip_reads_back() {
    let csv = sample_csv();
    let envelope = text_envelope(&csv, TEXT_KEY);
    let mut zip = Cursor::new(Vec::new());
    write_zip(
        &mut &envelope[..],
        &mut zip,
        "b1_progress_20240305.csv",
        None,
        chrono::Utc::now(),
    )
    .expect("zip");
    zip.set_position(0);
    let (name, back) = read_single_entry(zip, |name, entry| {
        let mut out = Vec::new();
        decrypt(entry, &mut out, &Secret::TextKey(TEXT_KEY.into())).map(|_| (name.to_owned(), out))
    })
    .expect("zip")
    .expect("decrypt");
    assert_eq!(name, "b1_progress_20240305.csv");
    assert_eq!(back, csv);

    let err = read_single_entry(Cursor::new(b"not a zip".to_vec()), |_, _| ()).expect_err("no zip");
    assert!(matches!(err, WriteError::Zip { .. }), "{err:?}");
}

// ---- Cross-checks with independent tools -------------------------------

/// Runs a tool the cross-checks need; fails (never skips) when it is missing.
fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap_or_else(|e| {
        panic!(
            "this test needs `{program}` on PATH ({e}); install it \
             (Debian: apt-get install openssl python3 python3-cryptography)"
        )
    })
}

fn script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/decrypt_envelope.py")
        .display()
        .to_string()
}

fn python_decrypt(envelope: &[u8], args: &[&str], env: &[(&str, &str)]) -> Output {
    let check = run("python3", &["-c", "import cryptography"], &[]);
    assert!(
        check.status.success(),
        "this test needs the Python package `cryptography` (pip install cryptography): {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("report.csv");
    std::fs::write(&file, envelope).expect("write");
    let mut all = vec![script(), file.display().to_string()];
    all.extend(args.iter().map(|s| s.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    run("python3", &all, env)
}

#[test]
fn python_cryptography_opens_what_we_write() {
    let csv = sample_csv();
    let text = text_envelope(&csv, TEXT_KEY);
    let out = python_decrypt(&text, &["--key-env", "THE_KEY"], &[("THE_KEY", TEXT_KEY)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == csv, "python's CSV differs");

    let private = fixture_path("test-only-org-private.pem")
        .display()
        .to_string();
    let public = public_envelope(&csv, &fixture("test-only-org-public.pem"));
    let out = python_decrypt(&public, &["--private-key", &private], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == csv, "python's CSV differs");

    // And it refuses a wrong key, as we do.
    let out = python_decrypt(&text, &["--key", "wrong"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong key"));
}

#[test]
fn openssl_opens_what_we_write() {
    let csv = sample_csv();
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).expect("write");
        p.display().to_string()
    };
    let openssl = |args: &[&str]| {
        let out = run("openssl", args, &[]);
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let zero_iv = "0".repeat(32);
    let open_body = |file_key: &[u8], body: &[u8]| {
        let body = write("body.bin", body);
        openssl(&[
            "enc",
            "-d",
            "-aes-256-cbc",
            "-K",
            &hex(file_key),
            "-iv",
            &zero_iv,
            "-in",
            &body,
        ])
    };

    // Text key: the wrapping key is the ASCII of the upper-case hex MD5.
    let (_, wrapped, body) = parts(&text_envelope(&csv, TEXT_KEY));
    let md5 = openssl(&["dgst", "-md5", "-r", &write("key.txt", TEXT_KEY.as_bytes())]);
    let md5_hex = String::from_utf8_lossy(&md5[..32]).to_uppercase();
    let wrapped = write("wrapped.bin", &wrapped);
    let file_key = openssl(&[
        "enc",
        "-d",
        "-aes-256-cbc",
        "-K",
        &hex(md5_hex.as_bytes()),
        "-iv",
        &zero_iv,
        "-in",
        &wrapped,
    ]);
    assert_eq!(file_key.len(), 32);
    assert!(
        open_body(&file_key, &body) == csv,
        "openssl's CSV differs (text key)"
    );

    // Public key: RSA PKCS#1 v1.5.
    let (_, wrapped, body) = parts(&public_envelope(&csv, &fixture("test-only-org-public.pem")));
    let wrapped = write("wrapped-rsa.bin", &wrapped);
    let private = fixture_path("test-only-org-private.pem")
        .display()
        .to_string();
    let file_key = openssl(&[
        "pkeyutl",
        "-decrypt",
        "-inkey",
        &private,
        "-pkeyopt",
        "rsa_padding_mode:pkcs1",
        "-in",
        &wrapped,
    ]);
    assert_eq!(file_key.len(), 32);
    assert!(
        open_body(&file_key, &body) == csv,
        "openssl's CSV differs (public key)"
    );
}

#[test]
fn we_open_what_openssl_writes() {
    // An envelope assembled by openssl alone, from a known file key.
    let csv = b"User ID,Score\r\nu1,10\r\nu2,7\r\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let csv_path = dir.path().join("plain.csv");
    std::fs::write(&csv_path, csv).expect("write");
    let key_path = dir.path().join("file.key");
    let file_key = [0x5au8; 32];
    std::fs::write(&key_path, file_key).expect("write");
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let zero_iv = "0".repeat(32);
    let body = run(
        "openssl",
        &[
            "enc",
            "-aes-256-cbc",
            "-K",
            &hex(&file_key),
            "-iv",
            &zero_iv,
            "-in",
            &csv_path.display().to_string(),
        ],
        &[],
    );
    assert!(body.status.success());
    let public = fixture_path("test-only-org-public.pem")
        .display()
        .to_string();
    let wrapped = run(
        "openssl",
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            &public,
            "-pkeyopt",
            "rsa_padding_mode:pkcs1",
            "-in",
            &key_path.display().to_string(),
        ],
        &[],
    );
    assert!(
        wrapped.status.success(),
        "{}",
        String::from_utf8_lossy(&wrapped.stderr)
    );
    let mut envelope = format!(
        "PUBLIC_KEY_ENCRYPTED_DATASET\n{}\n",
        STANDARD.encode(&wrapped.stdout)
    )
    .into_bytes();
    envelope.extend_from_slice(&body.stdout);
    assert_eq!(open(&envelope, &private_key()).expect("open"), csv);
}

/// `Read` is enough: the decrypted body can come straight from a zip entry
/// or a socket.
#[test]
fn decrypt_reads_from_any_reader() {
    let csv = sample_csv();
    let envelope = text_envelope(&csv, TEXT_KEY);
    let reader: Box<dyn Read> = Box::new(Cursor::new(envelope));
    let mut out = Vec::new();
    decrypt(reader, &mut out, &Secret::TextKey(TEXT_KEY.into())).expect("decrypt");
    assert_eq!(out, csv);
}
