//! `bootstrap`: the Lambda function. Glue only: build the model registry once at init
//! (verifying every embedded model), then hand each event to `inference-core`.

mod allocator;
mod events;
mod glibc_compat;
mod init_error;
mod logging;

use std::sync::Arc;

use inference_core::{FallbackConfig, LoadMode, Options, Registry, DEFAULT_MAX_LOADED};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

// One vCPU below 1769 MB and the handler runs one event at a time: a single-threaded
// runtime starts faster and costs nothing.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    allocator::configure();
    logging::init();
    let registry = match init() {
        Ok(r) => Arc::new(r),
        Err(message) => {
            tracing::error!(error = %message, "init failed");
            // Lambda records the init error and does not send this sandbox any event.
            init_error::report(&message).await;
            std::process::exit(1);
        }
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let registry = registry.clone();
        async move { Ok::<Value, lambda_runtime::Error>(events::handle(&registry, event.payload)) }
    }))
    .await
}

fn init() -> Result<Registry, String> {
    let var = |k: &str| std::env::var(k).ok();
    let mode = LoadMode::parse(&var("MODEL_LOAD").unwrap_or_default())?;
    let fallback = FallbackConfig::from_vars(var)?;
    let max_loaded = match var("MODEL_MAX_LOADED") {
        None => DEFAULT_MAX_LOADED,
        Some(v) => whole_number("MODEL_MAX_LOADED", &v, 1..=usize::MAX, "above 0")?,
    };
    let threads = threads(&var)?;
    inference_core::threads::set_intra_op_threads(threads);
    let started = std::time::Instant::now();
    let options = Options {
        mode,
        fallback: fallback.clone(),
        max_loaded,
    };
    let registry =
        Registry::with_options(model_pack::packed(), options).map_err(|e| e.to_string())?;
    tracing::info!(
        models = ?registry.model_names(),
        default_model = registry.default_model(),
        load_mode = ?mode,
        efs_dir = ?fallback.efs_dir,
        s3 = ?fallback.s3,
        max_loaded,
        threads,
        init_ms = started.elapsed().as_secs_f64() * 1000.0,
        "ready"
    );
    Ok(registry)
}

/// `MODEL_THREADS`, else one thread per vCPU the function's memory setting buys.
fn threads(var: &impl Fn(&str) -> Option<String>) -> Result<usize, String> {
    if let Some(v) = var("MODEL_THREADS") {
        return whole_number("MODEL_THREADS", &v, 1..=64, "from 1 to 64");
    }
    let memory = var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").and_then(|v| v.trim().parse().ok());
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(inference_core::threads::default_threads(memory, available))
}

/// A whole-number setting within `range`, or the error init reports (`expected` says the range).
fn whole_number(
    name: &str,
    value: &str,
    range: std::ops::RangeInclusive<usize>,
    expected: &str,
) -> Result<usize, String> {
    value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| format!("{name}={value:?}: expected a whole number {expected}"))
}
