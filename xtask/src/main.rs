//! `cargo xtask <task>`: the project's automation (the cargo-xtask convention).

// What `local` and `invoke` need: built with the default (light) features.
mod bootstrap;
mod example;
mod full;
mod local;
mod packed;
mod workspace;

// Everything else needs the `full` feature (the AWS SDKs, tract, the plotting crate).
macro_rules! full_modules {
    ($($module:ident),* $(,)?) => {
        $(#[cfg(feature = "full")] mod $module;)*
    };
}
full_modules!(
    aws_error,
    bench,
    build,
    cache,
    debian_package,
    deploy,
    fetch,
    files,
    heap,
    image,
    latency,
    pack,
    publish,
    python_env,
    retry,
    test_data,
    testing,
    tune,
);

use anyhow::Result;
use clap::{Parser, Subcommand};

use full::args::{BenchArgs, BuildArgs, DeployArgs, PackArgs, PublishArgs, TestArgs, TuneArgs};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, pack, run and test the ONNX-on-Lambda function"
)]
struct Cli {
    /// Show the AWS SDK's full error when an AWS call fails.
    #[arg(short, long, global = true)]
    #[cfg_attr(not(feature = "full"), allow(dead_code))]
    verbose: bool,
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the release `bootstrap` and package it: target/lambda/bootstrap.zip, checked
    /// against Lambda's glibc and size limits, or with --image a container image
    /// (target/lambda/image/, an OCI layout) for models a zip cannot hold.
    Build(BuildArgs),
    /// Build and ship to Lambda (the zip, or with --image --repository the image pushed to
    /// ECR): create/update the function, publish a version, point an alias (optionally as a
    /// canary; `--promote` finishes it).
    Deploy(Box<DeployArgs>),
    /// Pack the models in the manifest into models/packed/ and write the lock.
    PackModels(PackArgs),
    /// Publish the packed models to S3 and/or an EFS directory for the function's fallback.
    PublishModels(PublishArgs),
    /// Pack, build and serve the function locally: a Lambda Runtime API emulator plus an
    /// HTTP front door that turns requests into API Gateway v2 events. With --image, the
    /// container image, unpacked and run as Lambda runs it.
    Local(local::LocalArgs),
    /// One direct invocation of the function through the Runtime API emulator (of its
    /// image with --image).
    Invoke(local::InvokeArgs),
    /// Benchmark the function against Python + onnxruntime on the same models: cold start,
    /// warm latency, peak RSS, deployment size (target/bench/results.{json,md}).
    Bench(BenchArgs),
    /// Run every test (installs what the tests need, packs the models first).
    Test(TestArgs),
    /// Find the memory size to deploy with: the model's request at each size under Lambda's
    /// CPU share and memory limit, priced; a table, JSON and a plot (target/tune/).
    Tune(Box<TuneArgs>),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    #[cfg(feature = "full")]
    aws_error::set_verbose(cli.verbose);
    match cli.task {
        Task::Local(args) => local::local(args),
        Task::Invoke(args) => local::invoke(args),
        #[cfg(feature = "full")]
        Task::Build(args) => build::build(&args).map(|_| ()),
        #[cfg(feature = "full")]
        Task::Deploy(args) => deploy::deploy(&args),
        #[cfg(feature = "full")]
        Task::PackModels(args) => pack::run(&args).map(|_| ()),
        #[cfg(feature = "full")]
        Task::PublishModels(args) => publish::run(&args),
        #[cfg(feature = "full")]
        Task::Bench(args) => bench::run(&args),
        #[cfg(feature = "full")]
        Task::Test(args) => testing::run(args),
        #[cfg(feature = "full")]
        Task::Tune(args) => tune::run(&args),
        // `--verbose` and the task's arguments go to the full xtask as they were given.
        #[cfg(not(feature = "full"))]
        _ => full::run_instead(&format!(
            "`cargo xtask {}`",
            std::env::args()
                .skip(1)
                .find(|a| !a.starts_with('-'))
                .unwrap_or_default()
        )),
    }
}
