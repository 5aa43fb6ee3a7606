//! The light xtask and the full one. `cargo xtask` builds without default features: `local`
//! and `invoke` only need the emulator and a `cargo build` of the function, so a fresh clone
//! serves its first answer without compiling the AWS SDKs, tract or the plotting crate. Every
//! other task (and `local` when the models need packing, or with `--image`) re-runs the same
//! command line through `cargo run -p xtask` (default features, `full`): built once, then
//! cached beside the light one.

/// The argument types of the tasks only the full xtask runs. Without it each is the task's
/// command line, kept unparsed for the full xtask, so `cargo xtask --help` still lists
/// every task and `cargo xtask deploy --help` shows deploy's own help.
#[cfg(feature = "full")]
pub mod args {
    pub use crate::bench::BenchArgs;
    pub use crate::build::BuildArgs;
    pub use crate::deploy::DeployArgs;
    pub use crate::pack::PackArgs;
    pub use crate::publish::PublishArgs;
    pub use crate::testing::TestArgs;
    pub use crate::tune::TuneArgs;
}

#[cfg(not(feature = "full"))]
pub mod args {
    /// A task's arguments, as given; the full xtask parses them.
    #[derive(clap::Args, Debug)]
    #[command(disable_help_flag = true)]
    pub struct Passthrough {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        _args: Vec<String>,
    }

    pub type BenchArgs = Passthrough;
    pub type BuildArgs = Passthrough;
    pub type DeployArgs = Passthrough;
    pub type PackArgs = Passthrough;
    pub type PublishArgs = Passthrough;
    pub type TestArgs = Passthrough;
    pub type TuneArgs = Passthrough;
}

/// Runs this command line in the full xtask and exits with its status; `why` says what
/// needs it.
#[cfg(not(feature = "full"))]
pub fn run_instead<T>(why: &str) -> anyhow::Result<T> {
    use anyhow::Context;

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "{why} needs the full xtask (the AWS SDKs, tract, the plotting crate): \
         `cargo run -p xtask` (the first build takes 15-25 minutes on 2 cores; \
         it is cached after that)"
    );
    let status = std::process::Command::new(cargo)
        .current_dir(crate::workspace::root())
        .args(["run", "--package", "xtask", "--"])
        .args(std::env::args_os().skip(1))
        .status()
        .context("running cargo for the full xtask")?;
    std::process::exit(status.code().unwrap_or(1))
}
