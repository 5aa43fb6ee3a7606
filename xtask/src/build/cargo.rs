//! Building the `bootstrap` binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::workspace;

/// `cargo build --release -p lambda-fn --bin bootstrap`; returns the binary's path.
pub fn build_release() -> Result<PathBuf> {
    build(true, None, None)
}

/// A release build embedding the models packed in `packed` (the benchmarks' function).
pub fn build_release_with_models(packed: &Path) -> Result<PathBuf> {
    build(true, Some(packed), None)
}

/// The release build for a Rust target triple (the host's x86_64 one builds as above).
pub fn build_release_for(target: &str) -> Result<PathBuf> {
    if target == "x86_64-unknown-linux-gnu"
        && cfg!(all(target_arch = "x86_64", target_os = "linux"))
    {
        return build_release();
    }
    build(true, None, Some(target))
}

/// The dev-profile build (dependencies optimised, quick to rebuild our crates).
pub fn build_dev() -> Result<PathBuf> {
    build(false, None, None)
}

/// A dev build embedding the models packed in `packed` instead of models/packed/.
pub fn build_dev_with_models(packed: &Path) -> Result<PathBuf> {
    build(false, Some(packed), None)
}

fn build(release: bool, packed: Option<&Path>, target: Option<&str>) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace::root())
        .args(["build", "--bin", "bootstrap"]);
    if release {
        // Only the function's own dependency features: the shipped binary stays lean.
        cmd.args(["--package", "lambda-fn", "--release"]);
    } else {
        // Features unified over the workspace, as `cargo test --workspace` resolves them, so
        // dev builds for tests and `local --dev` share one compiled dependency set.
        cmd.arg("--workspace");
    }
    if let Some(t) = target {
        cmd.args(["--target", t]);
    }
    match packed {
        Some(dir) => cmd.env("MODEL_PACK_DIR", dir),
        None => cmd.env_remove("MODEL_PACK_DIR"),
    };
    eprintln!(
        "building bootstrap ({})",
        if release { "release" } else { "dev" }
    );
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build of bootstrap failed ({status})");
    }
    let path = workspace::target_dir()
        .join(target.unwrap_or(""))
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
