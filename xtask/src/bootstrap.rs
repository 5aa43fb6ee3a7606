//! Building the `bootstrap` binary, in the profile a task runs it in: `release` (fat LTO,
//! what `build` ships, and what `bench`, `tune` and images measure) or `dev` (dependencies
//! optimised, no LTO, our crates quick to rebuild: what `local`, `invoke` and the tests run).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::workspace;

/// Which Cargo profile a `bootstrap` is built with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    Dev,
    Release,
}

/// The default models' `bootstrap` in `profile`; returns the binary's path.
pub fn build(profile: Profile) -> Result<PathBuf> {
    cargo_build(profile == Profile::Release, None, None)
}

/// A release build embedding the models packed in `packed` (the benchmarks' function).
#[cfg(feature = "full")]
pub fn build_release_with_models(packed: &Path) -> Result<PathBuf> {
    cargo_build(true, Some(packed), None)
}

/// The release build for a Rust target triple (the host's x86_64 one builds as above).
#[cfg(feature = "full")]
pub fn build_release_for(target: &str) -> Result<PathBuf> {
    if target == "x86_64-unknown-linux-gnu"
        && cfg!(all(target_arch = "x86_64", target_os = "linux"))
    {
        return build(Profile::Release);
    }
    cargo_build(true, None, Some(target))
}

/// A dev build embedding the models packed in `packed` instead of models/packed/.
#[cfg(feature = "full")]
pub fn build_dev_with_models(packed: &Path) -> Result<PathBuf> {
    cargo_build(false, Some(packed), None)
}

fn cargo_build(release: bool, packed: Option<&Path>, target: Option<&str>) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace::root())
        .args(["build", "--bin", "bootstrap"]);
    if release {
        // Only the function's own dependency features: the shipped binary stays lean.
        cmd.args(["--package", "lambda-fn", "--release"]);
    } else {
        // Features unified over the workspace, as `cargo test --workspace` resolves them, so
        // the tests' dev builds and `local`'s share one compiled dependency set.
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
