//! `bootstrap`: the Lambda function. Glue only: build the model registry once at init
//! (verifying every embedded model), then hand each event to `inference-core`.

mod allocator;
mod events;
mod glibc_compat;
mod init_error;
mod logging;

use std::sync::Arc;

use inference_core::{Registry, Settings};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::value::RawValue;

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
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let registry = registry.clone();
        async move {
            let deadline = events::deadline(event.context.deadline);
            events::handle(&registry, &event.payload, deadline).map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}

fn init() -> Result<Registry, String> {
    let settings = Settings::from_env().map_err(|e| e.to_string())?;
    inference_core::set_intra_op_threads(settings.threads);
    let started = std::time::Instant::now();
    let registry =
        Registry::embedded(model_pack::packed(), &settings).map_err(|e| e.to_string())?;
    tracing::info!(
        models = ?registry.model_names(),
        default_model = registry.default_model(),
        load_mode = ?settings.load,
        efs_dir = ?settings.fallback.efs_dir,
        s3 = ?settings.fallback.s3,
        max_loaded = settings.max_loaded,
        threads = settings.threads,
        init_ms = started.elapsed().as_secs_f64() * 1000.0,
        "ready"
    );
    Ok(registry)
}
