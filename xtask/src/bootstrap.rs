//! Building the `bootstrap` binary, in the profile a task runs it in: `release` (fat LTO,
//! what `build` ships, and what `bench`, `tune` and images measure), `dev` (dependencies
//! optimised, no LTO, our crates quick to rebuild: what the tests run) or `local` (made for
//! trying: dependencies at `opt-level = 1`, tract's kernels optimised; what `local` and
//! `invoke` run, minutes from a fresh clone).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::workspace;

/// Which Cargo profile a `bootstrap` is built with (`Cargo.toml`'s `[profile.*]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    Local,
    Dev,
    Release,
}

impl Profile {
    fn name(self) -> &'static str {
        match self {
            Profile::Local => "local",
            Profile::Dev => "dev",
            Profile::Release => "release",
        }
    }

    /// The directory under the target directory Cargo writes the profile's output to.
    fn dir(self) -> &'static str {
        match self {
            Profile::Local => "local",
            Profile::Dev => "debug",
            Profile::Release => "release",
        }
    }
}

/// The default models' `bootstrap` in `profile`; returns the binary's path.
pub fn build(profile: Profile) -> Result<PathBuf> {
    cargo_build(profile, None, None)
}

/// A release build embedding the models packed in `packed` (the benchmarks' function).
#[cfg(feature = "full")]
pub fn build_release_with_models(packed: &Path) -> Result<PathBuf> {
    cargo_build(Profile::Release, Some(packed), None)
}

/// The release build for a Rust target triple (the host's x86_64 one builds as above).
#[cfg(feature = "full")]
pub fn build_release_for(target: &str) -> Result<PathBuf> {
    if target == "x86_64-unknown-linux-gnu"
        && cfg!(all(target_arch = "x86_64", target_os = "linux"))
    {
        return build(Profile::Release);
    }
    cargo_build(Profile::Release, None, Some(target))
}

/// A dev build embedding the models packed in `packed` instead of models/packed/.
#[cfg(feature = "full")]
pub fn build_dev_with_models(packed: &Path) -> Result<PathBuf> {
    cargo_build(Profile::Dev, Some(packed), None)
}

fn cargo_build(profile: Profile, packed: Option<&Path>, target: Option<&str>) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace::root()).args([
        "build",
        "--bin",
        "bootstrap",
        "--profile",
        profile.name(),
    ]);
    match profile {
        // Features unified over the workspace, as `cargo test --workspace` resolves them, so
        // the tests' dev builds share one compiled dependency set.
        Profile::Dev => cmd.arg("--workspace"),
        // Only the function's own dependency features, as it ships.
        Profile::Local | Profile::Release => cmd.args(["--package", "lambda-fn"]),
    };
    if let Some(t) = target {
        cmd.args(["--target", t]);
    }
    match packed {
        Some(dir) => cmd.env("MODEL_PACK_DIR", dir),
        None => cmd.env_remove("MODEL_PACK_DIR"),
    };
    eprintln!("building bootstrap ({} profile)", profile.name());
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build of bootstrap failed ({status})");
    }
    let path = workspace::target_dir()
        .join(target.unwrap_or(""))
        .join(profile.dir())
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
