//! `cargo xtask <task>`: the project's automation (the cargo-xtask convention).

mod aws_error;
mod bench;
mod build;
mod cache;
mod debian_package;
mod deploy;
mod fetch;
mod files;
mod heap;
mod image;
mod latency;
mod local;
mod pack;
mod publish;
mod python_env;
mod retry;
mod test_data;
mod testing;
mod tune;
mod workspace;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, pack, run and test the ONNX-on-Lambda function"
)]
struct Cli {
    /// Show the AWS SDK's full error when an AWS call fails.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the release `bootstrap` and package it: target/lambda/bootstrap.zip, checked
    /// against Lambda's glibc and size limits, or with --image a container image
    /// (target/lambda/image/, an OCI layout) for models a zip cannot hold.
    Build(build::BuildArgs),
    /// Build and ship to Lambda (the zip, or with --image --repository the image pushed to
    /// ECR): create/update the function, publish a version, point an alias (optionally as a
    /// canary; `--promote` finishes it).
    Deploy(Box<deploy::DeployArgs>),
    /// Pack the models in the manifest into models/packed/ and write the lock.
    PackModels(pack::PackArgs),
    /// Publish the packed models to S3 and/or an EFS directory for the function's fallback.
    PublishModels(publish::PublishArgs),
    /// Pack, build and serve the function locally: a Lambda Runtime API emulator plus an
    /// HTTP front door that turns requests into API Gateway v2 events. With --image, the
    /// container image, unpacked and run as Lambda runs it.
    Local(local::LocalArgs),
    /// One direct invocation of the function through the Runtime API emulator (of its
    /// image with --image).
    Invoke(local::InvokeArgs),
    /// Benchmark the function against Python + onnxruntime on the same models: cold start,
    /// warm latency, peak RSS, deployment size (target/bench/results.{json,md}).
    Bench(bench::BenchArgs),
    /// Run every test (installs what the tests need, packs the models first).
    Test(testing::TestArgs),
    /// Find the memory size to deploy with: the model's request at each size under Lambda's
    /// CPU share and memory limit, priced; a table, JSON and a plot (target/tune/).
    Tune(Box<tune::TuneArgs>),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    aws_error::set_verbose(cli.verbose);
    match cli.task {
        Task::Build(args) => build::build(&args).map(|_| ()),
        Task::Deploy(args) => deploy::deploy(&args),
        Task::PackModels(args) => pack::run(&args).map(|_| ()),
        Task::PublishModels(args) => publish::run(&args),
        Task::Local(args) => local::local(args),
        Task::Invoke(args) => local::invoke(args),
        Task::Bench(args) => bench::run(&args),
        Task::Test(args) => testing::run(args),
        Task::Tune(args) => tune::run(&args),
    }
}
