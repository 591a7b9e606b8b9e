//! What the CLI's test files share.

use assert_cmd::Command;
use std::path::Path;

/// `exhaust` run in `dir`, with none of the developer's settings: every
/// `EXHAUST_*` variable (a configuration, a store, a snapshot, a key) is
/// removed, so a test sees only what it sets itself.
pub fn exhaust(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("exhaust").expect("binary");
    cmd.current_dir(dir);
    for (name, _) in std::env::vars() {
        if name.starts_with("EXHAUST_") {
            cmd.env_remove(name);
        }
    }
    cmd
}
