//! `cargo xtask test`: everything the test suite needs, then the suite.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::{bootstrap_build, pack, python_env, test_data, workspace};

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Extra arguments for `cargo test` (after `--`).
    #[arg(last = true)]
    pub cargo_args: Vec<String>,
}

pub fn run(args: TestArgs) -> Result<()> {
    // The build embeds what the lock lists: the packed files must exist first.
    pack::run(&pack::PackArgs {
        manifest: workspace::default_manifest(),
        out: workspace::default_packed_dir(),
        update: false,
        cache_dir: None,
    })?;
    let data = test_data::ensure()?;
    let fallback = fallback_fixture()?;
    // moto's server mode: the real S3 (and Lambda, IAM) APIs on loopback, for the tests.
    let moto = python_env::ensure("moto")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .env("TEST_DATA_DIR", &data)
        .env("MOTO_SERVER", moto.bin("moto_server"))
        .env("FALLBACK_PACKED", &fallback.packed)
        .env("FALLBACK_BOOTSTRAP", &fallback.bootstrap)
        .env_remove("MODEL_PACK_DIR")
        .current_dir(workspace::root())
        .args(["test", "--workspace"])
        .args(&args.cargo_args)
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("tests failed ({status})");
    }
    Ok(())
}

struct Fixture {
    packed: PathBuf,
    bootstrap: PathBuf,
}

/// The fallback tests' function: `xtask/tests/fixtures/fallback/models.toml` packed and
/// built into its own `bootstrap` (one embedded model, two `embed = false`). Built once here
/// rather than per test; the suite's own build then relinks with the default models.
fn fallback_fixture() -> Result<Fixture> {
    let dir = workspace::target_dir().join("fixture/fallback");
    let packed = dir.join("packed");
    pack::run(&pack::PackArgs {
        manifest: workspace::root().join("xtask/tests/fixtures/fallback/models.toml"),
        out: packed.clone(),
        update: false,
        cache_dir: None,
    })?;
    let built = bootstrap_build::build_dev_with_models(&packed)?;
    let bootstrap = dir.join("bootstrap");
    std::fs::copy(&built, &bootstrap)
        .with_context(|| format!("cannot copy {} to {}", built.display(), bootstrap.display()))?;
    Ok(Fixture { packed, bootstrap })
}
