//! What the CLI's test files share: the one way to run `exhaust`.
// Each test file uses some of it.
#![allow(dead_code)]

use assert_cmd::Command;
use std::path::Path;

/// `exhaust` run in `dir`, with none of the developer's settings: every
/// `EXHAUST_*` variable (a configuration, a store, a snapshot, a key) is
/// removed, so a test sees only what it sets itself.
pub fn exhaust(dir: &Path) -> Command {
    let mut cmd = Command::new(exhaust_bin());
    cmd.current_dir(dir);
    for (name, _) in std::env::vars() {
        if name.starts_with("EXHAUST_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// [`exhaust`] in this crate's folder.
pub fn command() -> Command {
    exhaust(Path::new(env!("CARGO_MANIFEST_DIR")))
}

/// The `exhaust` binary, for tests that drive the process themselves.
pub fn exhaust_bin() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("exhaust")
}
