//! `exhaust decrypt`: turn an encrypted report (Sunbird's envelope, SPEC
//! section 7, or the report zip holding it) back into its CSV, for the
//! people who receive TEXT_KEY and PUBLIC_KEY reports.
//!
//! The CSV is written only when the whole file decrypted: `--out` goes
//! through a temporary file renamed on success; standard output gets the
//! CSV after a first pass has checked the key and the whole body, since a
//! wrong key or a damaged body shows only at the end. Keys are never
//! printed or logged.

use anyhow::{Context, bail};
use clap::Args;
use exhaust_writer::envelope::decrypt;
use exhaust_writer::{AtomicFile, EnvelopeError, Secret, read_single_entry};
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// `exhaust decrypt`.
#[derive(Args)]
pub struct DecryptArgs {
    /// The encrypted report: the envelope file itself, or the report's .zip
    /// holding it.
    pub input: PathBuf,

    /// The key that opens it.
    #[command(flatten)]
    pub secret: SecretArgs,

    /// Where to write the CSV (created or replaced only when decryption
    /// succeeds); default: standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Exactly one of the ways to give the key.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct SecretArgs {
    /// The text key of a TEXT_KEY_ENCRYPTED_DATASET report (the key given
    /// with the request). Other users of the machine can see command lines:
    /// prefer --key-env.
    #[arg(long, value_name = "TEXT")]
    pub key: Option<String>,

    /// The name of an environment variable holding the text key.
    #[arg(long, value_name = "VAR")]
    pub key_env: Option<String>,

    /// The org's RSA private key (PEM, PKCS#8 or PKCS#1, unencrypted) for a
    /// PUBLIC_KEY_ENCRYPTED_DATASET report.
    #[arg(long, value_name = "FILE")]
    pub private_key: Option<PathBuf>,
}

// By hand, so that the key never reaches a debug print.
impl fmt::Debug for DecryptArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptArgs")
            .field("input", &self.input)
            .field("key", &self.secret.key.as_ref().map(|_| "<redacted>"))
            .field("key_env", &self.secret.key_env)
            .field("private_key", &self.secret.private_key)
            .field("out", &self.out)
            .finish()
    }
}

/// Decrypts the report. `Ok(true)` when the CSV was written; `Ok(false)`,
/// after printing why, when the file does not open (a wrong key, a damaged
/// or unencrypted file); `Err` for bad usage (missing files, unset
/// variables, output that cannot be written).
pub fn run(args: DecryptArgs) -> anyhow::Result<bool> {
    let secret = secret(&args.secret)?;
    let input = Input::open(&args.input)?;
    let outcome = match &args.out {
        Some(out) => {
            let mut file = AtomicFile::create(out)?;
            match input.decrypt(&secret, &mut file)? {
                Ok(bytes) => {
                    file.commit()?;
                    Ok(bytes)
                }
                // Dropping the temporary file removes it.
                Err(e) => Err(e),
            }
        }
        None => match input.decrypt(&secret, io::sink())? {
            Ok(_) => {
                let stdout = io::stdout().lock();
                match input.decrypt(&secret, stdout)? {
                    Ok(bytes) => Ok(bytes),
                    Err(e) => bail!("{}: changed while being read: {e}", args.input.display()),
                }
            }
            Err(e) => Err(e),
        },
    };
    match outcome {
        Ok(bytes) => {
            tracing::info!(bytes, "decrypted");
            Ok(true)
        }
        Err(why) => {
            eprintln!("error: cannot decrypt {}: {why}", args.input.display());
            Ok(false)
        }
    }
}

fn secret(args: &SecretArgs) -> anyhow::Result<Secret> {
    let key = match (&args.key, &args.key_env, &args.private_key) {
        (Some(key), _, _) => key.clone(),
        (None, Some(var), _) => std::env::var(var)
            .with_context(|| format!("--key-env: environment variable {var} is not set"))?,
        (None, None, Some(path)) => {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("reading the private key {}", path.display()))?;
            return Ok(Secret::PrivateKeyPem(pem));
        }
        (None, None, None) => bail!("give --key, --key-env or --private-key"),
    };
    if key.is_empty() {
        bail!("the text key is empty");
    }
    Ok(Secret::TextKey(key))
}

/// The input file, an envelope or a zip holding one.
struct Input {
    path: PathBuf,
    zip: bool,
}

impl Input {
    fn open(path: &Path) -> anyhow::Result<Self> {
        let mut magic = [0u8; 4];
        let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let n = read_up_to(&mut file, &mut magic)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            zip: magic[..n] == *b"PK\x03\x04",
        })
    }

    /// Decrypts into `out`. The outer error is bad usage (the file cannot
    /// be read, the output cannot be written); the inner one is why the
    /// file does not open.
    fn decrypt<W: Write>(
        &self,
        secret: &Secret,
        mut out: W,
    ) -> anyhow::Result<Result<u64, String>> {
        let file =
            File::open(&self.path).with_context(|| format!("opening {}", self.path.display()))?;
        let result = if self.zip {
            match read_single_entry(BufReader::new(file), |_, entry| {
                decrypt(entry, &mut out, secret)
            }) {
                Ok(result) => result,
                Err(e) => return Ok(Err(format!("not a report zip: {e}"))),
            }
        } else {
            decrypt(BufReader::new(file), &mut out, secret)
        };
        match result {
            Ok(bytes) => Ok(Ok(bytes)),
            Err(e @ EnvelopeError::Io { .. }) => {
                Err(anyhow::Error::new(e).context(format!("decrypting {}", self.path.display())))
            }
            Err(e) => Ok(Err(e.to_string())),
        }
    }
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
