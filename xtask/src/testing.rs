//! `cargo xtask test`: everything the test suite needs, then the suite.

use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::{pack, test_data, workspace};

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
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .env("TEST_DATA_DIR", &data)
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
