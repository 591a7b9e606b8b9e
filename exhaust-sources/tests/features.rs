//! The cargo features follow the folders: a snapshot-only build (what an
//! embedder that reads snapshot folders compiles) brings no driver of the
//! live stores or the request stores. Breaking this fails the tests.

use std::path::Path;
use std::process::Command;

/// The crates `exhaust-sources` depends on (normal edges) with only these
/// features.
fn dependencies(features: &str) -> Vec<String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args([
            "tree", "--edges", "normal", "--prefix", "none", "--format", "{p}",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .args([
            "-p",
            "exhaust-sources",
            "--no-default-features",
            "--features",
            features,
        ])
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

const DRIVERS: [&str; 4] = ["scylla", "redis", "sqlx", "reqwest"];

#[test]
fn a_snapshot_only_build_compiles_no_driver() {
    let names = dependencies("snapshot");
    assert!(names.iter().any(|n| n == "rayon"), "{names:?}");
    for driver in DRIVERS {
        assert!(
            !names.iter().any(|n| n == driver),
            "{driver} in a snapshot-only build: {names:?}"
        );
    }
}

#[test]
fn each_store_feature_brings_its_own_driver_only() {
    for (feature, driver) in [
        ("cassandra", "scylla"),
        ("redis", "redis"),
        ("search", "reqwest"),
        ("postgres", "sqlx"),
    ] {
        let names = dependencies(feature);
        for other in DRIVERS {
            assert_eq!(
                names.iter().any(|n| n == other),
                other == driver,
                "{other} with the feature {feature}: {names:?}"
            );
        }
    }
}
