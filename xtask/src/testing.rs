//! `cargo xtask test`: everything the test suite needs, then the suite.

use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::{pack, python_env, test_data, workspace};

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
    // moto's server mode: the real S3 (and Lambda, IAM) APIs on loopback, for the tests.
    let moto = python_env::ensure("moto")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .env("TEST_DATA_DIR", &data)
        .env("MOTO_SERVER", moto.bin("moto_server"))
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
