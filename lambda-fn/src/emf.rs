//! CloudWatch metrics as Embedded Metric Format (EMF) lines on stdout: CloudWatch Logs
//! extracts them from the log stream, so no API call is made and nothing waits on one. The
//! `metrics` facade records; `metrics_cloudwatch_embedded` writes one EMF document per
//! dimension set when flushed, after each invocation (and once after init).
//!
//! Per request, by `Model` × `ModelSource` × `StatusClass`, and by `StatusClass` alone for
//! function-wide alarms: `Requests`, `Latency` (ms), `Rows`. By `Model`:
//! `ValidationFailures`. Per model load (at init, or on first use), by `Model` ×
//! `ModelSource`: `ModelLoadTime` (ms), and `FallbackLoads` when a fallback store served it.
//! Per plan built on the first request of a shape, by `Model`: `PlanBuilds` and
//! `PlanBuildTime` (ms).

use inference_core::settings::MetricsSettings;
use inference_core::{ModelLoad, PlanBuild, RequestRecord};
use metrics::{counter, describe_counter, describe_histogram, histogram, Unit};
use metrics_cloudwatch_embedded::Collector;

/// The `Model` and `ModelSource` of a request no served model answered.
const NONE: &str = "none";

/// The function's metrics; every call is a no-op when they are off.
#[derive(Clone, Copy)]
pub struct Metrics {
    collector: Option<&'static Collector>,
}

impl Metrics {
    /// Installs the EMF recorder (once per process) when metrics are on.
    pub fn init(settings: &MetricsSettings) -> Result<Self, String> {
        if !settings.enabled {
            return Ok(Metrics { collector: None });
        }
        let collector = metrics_cloudwatch_embedded::Builder::new()
            .cloudwatch_namespace(settings.namespace.clone())
            .init()
            .map_err(|e| format!("cannot start the metrics recorder: {e}"))?;
        describe_counter!("Requests", Unit::Count, "requests answered");
        describe_histogram!("Latency", Unit::Milliseconds, "time to answer a request");
        describe_counter!("Rows", Unit::Count, "rows (texts, batch items) answered");
        describe_counter!(
            "ValidationFailures",
            Unit::Count,
            "requests refused for what they asked (4xx)"
        );
        describe_histogram!("ModelLoadTime", Unit::Milliseconds, "time to load a model");
        describe_counter!(
            "FallbackLoads",
            Unit::Count,
            "models loaded from a fallback store"
        );
        describe_counter!(
            "PlanBuilds",
            Unit::Count,
            "plans built for the first request of a shape"
        );
        describe_histogram!(
            "PlanBuildTime",
            Unit::Milliseconds,
            "time to build a plan for a new request shape"
        );
        Ok(Metrics {
            collector: Some(collector),
        })
    }

    pub fn request(&self, r: &RequestRecord) {
        if self.collector.is_none() {
            return;
        }
        let model = r.model.clone().unwrap_or_else(|| NONE.into());
        let source = r.source.unwrap_or(NONE);
        let class = r.status_class();
        let ms = r.duration.as_secs_f64() * 1000.0;
        let labels = [
            ("Model", model.clone()),
            ("ModelSource", source.to_string()),
            ("StatusClass", class.to_string()),
        ];
        counter!("Requests", &labels).increment(1);
        histogram!("Latency", &labels).record(ms);
        if r.rows > 0 {
            counter!("Rows", &labels).increment(r.rows as u64);
        }
        counter!("Requests", "StatusClass" => class).increment(1);
        histogram!("Latency", "StatusClass" => class).record(ms);
        if r.failed_validation() {
            counter!("ValidationFailures", "Model" => model).increment(1);
        }
    }

    pub fn loads(&self, loads: &[ModelLoad]) {
        if self.collector.is_none() {
            return;
        }
        for load in loads {
            let labels = [
                ("Model", load.model.clone()),
                ("ModelSource", load.source.to_string()),
            ];
            histogram!("ModelLoadTime", &labels).record(load.duration.as_secs_f64() * 1000.0);
            if load.used_fallback() {
                counter!("FallbackLoads", &labels).increment(1);
            }
        }
    }

    pub fn plan_builds(&self, builds: &[PlanBuild]) {
        if self.collector.is_none() {
            return;
        }
        for build in builds {
            let labels = [("Model", build.model.clone())];
            counter!("PlanBuilds", &labels).increment(1);
            histogram!("PlanBuildTime", &labels).record(build.duration.as_secs_f64() * 1000.0);
        }
    }

    /// Writes what was recorded since the last flush, each document tagged with the
    /// invocation's ids (properties: searchable in Logs Insights, not dimensions).
    pub fn flush(&self, request_id: Option<&str>, xray_trace_id: Option<&str>) {
        let Some(collector) = self.collector else {
            return;
        };
        for (name, value) in [("requestId", request_id), ("xrayTraceId", xray_trace_id)] {
            match value {
                Some(v) => collector.set_property(name, v.to_string()),
                None => collector.remove_property(name),
            };
        }
        // Holding the lock keeps each document one unbroken line beside the log lines.
        if let Err(e) = collector.flush(std::io::stdout().lock()) {
            tracing::warn!(error = %e, "cannot write the metrics");
        }
    }
}
