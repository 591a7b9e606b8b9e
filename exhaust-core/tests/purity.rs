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

/// The crates `exhaust-core` depends on with these extra cargo features.
fn dependency_names(features: &[&str]) -> Vec<String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
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
    .args(["-p", "exhaust-core"]);
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    let out = cmd.output().expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let names: Vec<String> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert!(
        names.iter().any(|n| n == "serde_json"),
        "cargo tree output looks wrong:\n{tree}"
    );
    names
}

#[test]
fn core_has_no_runtime_or_io_dependency() {
    let names = dependency_names(&[]);
    let bad: Vec<&String> = names
        .iter()
        .filter(|n| FORBIDDEN_CRATES.contains(&n.as_str()))
        .collect();
    assert!(
        bad.is_empty(),
        "exhaust-core must stay pure, but depends on {bad:?}"
    );
    assert!(
        !names.iter().any(|n| n == "proptest"),
        "proptest is for the `proptest` feature only"
    );
}

/// The `proptest` feature (test support for embedders) adds proptest and
/// nothing forbidden, with one documented exception: proptest seeds its
/// generator from the operating system (rand → getrandom → libc). Its fork
/// mode (tempfile, process handling) stays off.
#[test]
fn the_proptest_feature_adds_only_proptest() {
    const EXCEPTIONS: &[&str] = &["libc"];
    let names = dependency_names(&["proptest"]);
    assert!(names.iter().any(|n| n == "proptest"), "{names:?}");
    let bad: Vec<&String> = names
        .iter()
        .filter(|n| FORBIDDEN_CRATES.contains(&n.as_str()) && !EXCEPTIONS.contains(&n.as_str()))
        .collect();
    assert!(
        bad.is_empty(),
        "the proptest feature brings forbidden crates: {bad:?}"
    );
    assert!(
        !names.iter().any(|n| n == "rusty-fork"),
        "proptest's fork mode must stay off"
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
    // Every source file, in every folder of src/.
    let mut files = Vec::new();
    let mut folders = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("src exists") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 20, "the source files were found: {files:?}");
    let mut offences = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable source");
        for call in FORBIDDEN_CALLS {
            if text.contains(call) {
                offences.push(format!("{} uses {call}", path.display()));
            }
        }
    }
    assert!(offences.is_empty(), "{offences:#?}");
}
