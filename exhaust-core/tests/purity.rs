//! The core stays pure: no runtime, driver, file-format or I/O crate among
//! its dependencies, and no clock, environment, file or network access in
//! its source. Breaking this fails the build's tests.

use std::path::Path;
use std::process::Command;

const FORBIDDEN_CRATES: &[&str] = &[
    "tokio",
    "async-std",
    "smol",
    "futures-executor",
    "mio",
    "hyper",
    "reqwest",
    "scylla",
    "redis",
    "sqlx",
    "object_store",
    "zip",
    "csv",
    "flate2",
    "arrow",
    "parquet",
    "axum",
    "tracing-subscriber",
    "memmap2",
    "tempfile",
    "rusqlite",
    "postgres",
    "libc",
];

#[test]
fn core_has_no_runtime_or_io_dependency() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--manifest-path",
        ])
        .arg(&manifest)
        .args(["-p", "exhaust-core"])
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        names.contains(&"serde_json"),
        "cargo tree output looks wrong:\n{tree}"
    );
    let bad: Vec<&&str> = names
        .iter()
        .filter(|n| FORBIDDEN_CRATES.contains(n))
        .collect();
    assert!(
        bad.is_empty(),
        "exhaust-core must stay pure, but depends on {bad:?}"
    );
}

#[test]
fn core_source_reads_no_clock_environment_file_or_network() {
    const FORBIDDEN_CALLS: &[&str] = &[
        "std::fs",
        "std::net",
        "std::env",
        "std::process",
        "SystemTime",
        "Utc::now",
        "Local::now",
        "Instant::now",
        "thread::spawn",
    ];
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offences = Vec::new();
    for entry in std::fs::read_dir(&src).expect("src exists") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("readable source");
        for call in FORBIDDEN_CALLS {
            if text.contains(call) {
                offences.push(format!("{} uses {call}", path.display()));
            }
        }
    }
    assert!(offences.is_empty(), "{offences:#?}");
}
