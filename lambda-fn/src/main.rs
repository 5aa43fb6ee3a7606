//! `bootstrap`: the Lambda function. Glue only: build the model registry once at init
//! (verifying every embedded model), then hand each event to `inference-core`.

mod allocator;
mod emf;
mod events;
mod glibc_compat;
mod init_error;
mod logging;

use std::sync::Arc;

use inference_core::{Registry, Settings};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::value::RawValue;

use emf::Metrics;

// One vCPU below 1769 MB and the handler runs one event at a time: a single-threaded
// runtime starts faster and costs nothing.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    allocator::configure();
    logging::init();
    let state = match init() {
        Ok(state) => Arc::new(state),
        Err(message) => {
            tracing::error!(error = %message, "init failed");
            // Lambda records the init error and does not send this sandbox any event.
            init_error::report(&message).await;
            std::process::exit(1);
        }
    };
    state.metrics.loads(&state.registry.take_loads());
    state
        .metrics
        .plan_builds(&state.registry.take_plan_builds());
    state.metrics.flush(None, None);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let state = state.clone();
        async move {
            let State {
                registry,
                metrics,
                cors,
            } = &*state;
            let deadline = events::deadline(event.context.deadline);
            let handled = events::handle(registry, cors, &event.payload, deadline);
            if let Ok(events::Handled {
                record: Some(record),
                ..
            }) = &handled
            {
                metrics.request(record);
            }
            // A model loaded on first use is measured with the request that loaded it.
            metrics.loads(&registry.take_loads());
            // So is a plan built for the first request of a shape.
            metrics.plan_builds(&registry.take_plan_builds());
            let ctx = &event.context;
            metrics.flush(Some(&ctx.request_id), ctx.xray_trace_id.as_deref());
            handled
                .map(|h| h.payload)
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}

/// What init builds once and every invocation shares.
struct State {
    registry: Registry,
    metrics: Metrics,
    cors: events::Cors,
}

fn init() -> Result<State, String> {
    let settings = Settings::from_env().map_err(|e| e.to_string())?;
    let metrics = Metrics::init(&settings.metrics)?;
    inference_core::set_intra_op_threads(settings.threads);
    let started = std::time::Instant::now();
    let registry =
        Registry::embedded(model_pack::packed(), &settings).map_err(|e| e.to_string())?;
    tracing::info!(
        models = ?registry.model_names(),
        default_model = registry.default_model(),
        load_mode = ?settings.load,
        image_dir = ?settings.fallback.image_dir,
        efs_dir = ?settings.fallback.efs_dir,
        s3 = ?settings.fallback.s3,
        max_loaded = settings.max_loaded,
        threads = settings.threads,
        init_ms = started.elapsed().as_secs_f64() * 1000.0,
        "ready"
    );
    Ok(State {
        cors: events::Cors::new(settings.cors_origins.clone()),
        registry,
        metrics,
    })
}
