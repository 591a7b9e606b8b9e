//! Records the commit the binaries are built from, for `--version` and the
//! `exhaust_build_info` metric: `$EXHAUST_GIT_HASH` when the build sets it
//! (an image build without the repository's history), else `git rev-parse`,
//! else `unknown`. Rebuilt when the checked-out commit moves.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=EXHAUST_GIT_HASH");
    let hash = std::env::var("EXHAUST_GIT_HASH")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=EXHAUST_GIT_HASH={hash}");
    // A new commit changes the branch's ref (or packed-refs), not HEAD.
    if let Some(git_dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
    }
    if let (Some(common), Some(branch)) = (
        git(&["rev-parse", "--git-common-dir"]),
        git(&["rev-parse", "--symbolic-full-name", "HEAD"]),
    ) {
        println!("cargo:rerun-if-changed={common}/{branch}");
        println!("cargo:rerun-if-changed={common}/packed-refs");
    }
}
