//! Building the `bootstrap` binary.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::workspace;

/// `cargo build --release -p lambda-fn --bin bootstrap`; returns the binary's path.
pub fn build_release() -> Result<PathBuf> {
    build(true)
}

/// The dev-profile build (dependencies optimised, quick to rebuild our crates).
pub fn build_dev() -> Result<PathBuf> {
    build(false)
}

fn build(release: bool) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace::root()).args([
        "build",
        "--package",
        "lambda-fn",
        "--bin",
        "bootstrap",
    ]);
    if release {
        cmd.arg("--release");
    }
    eprintln!(
        "building bootstrap ({})",
        if release { "release" } else { "dev" }
    );
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build of bootstrap failed ({status})");
    }
    let path = workspace::target_dir()
        .join(if release { "release" } else { "debug" })
        .join("bootstrap");
    let size = std::fs::metadata(&path)
        .with_context(|| format!("built binary not found at {}", path.display()))?
        .len();
    eprintln!(
        "bootstrap: {} ({:.1} MB)",
        path.display(),
        size as f64 / 1e6
    );
    Ok(path)
}
