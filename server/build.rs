//! Embeds the git commit (`HANZO_GIT_COMMIT`) for `--version` and `/health`, and rebuilds when
//! a migration is added (the migrations are embedded by `sqlx::migrate!`).

use std::{path::Path, process::Command};

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
    for p in ["../.git/HEAD", "../.git/refs/heads", "../.git/packed-refs"] {
        if Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    let commit = Command::new("git")
        .args(["rev-parse", "--short=9", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=HANZO_GIT_COMMIT={commit}");
}
