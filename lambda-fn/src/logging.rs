//! Structured logs on stdout, one JSON object per line in the shape of Lambda's JSON log
//! format (`timestamp`, `level`, `message`, and `requestId` while an invocation is being
//! answered), so CloudWatch Logs Insights and subscription filters read them as they read a
//! managed runtime's lines. The ids come from the span `lambda_runtime` opens around each
//! invocation (`requestId`, and `xrayTraceId` when the invocation is traced).

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The invocation span's fields each line carries.
const INVOCATION_FIELDS: [&str; 2] = ["requestId", "xrayTraceId"];

pub fn init() {
    let directive = level_directive(
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
        std::env::var("RUST_LOG").ok().as_deref(),
    );
    tracing_subscriber::fmt()
        .fmt_fields(JsonFields::new())
        .event_format(LambdaJson)
        .with_env_filter(EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
}

/// The filter: Lambda's log-level control (`AWS_LAMBDA_LOG_LEVEL`, set from the function's
/// logging config) wins over `RUST_LOG`, as in Lambda's managed runtimes; INFO otherwise.
fn level_directive(lambda_level: Option<&str>, rust_log: Option<&str>) -> String {
    match lambda_level.map(str::trim).filter(|l| !l.is_empty()) {
        // Lambda's levels are TRACE, DEBUG, INFO, WARN, ERROR and FATAL; tracing has no FATAL.
        Some(level) if level.eq_ignore_ascii_case("fatal") => "error".into(),
        Some(level) => level.to_ascii_lowercase(),
        None => rust_log
            .filter(|r| !r.trim().is_empty())
            .unwrap_or("info")
            .to_string(),
    }
}

/// Lambda's JSON log line, with the event's own fields beside the message.
struct LambdaJson;

impl<S, N> FormatEvent<S, N> for LambdaJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        line.insert("timestamp".into(), timestamp.into());
        line.insert(
            "level".into(),
            event.metadata().level().as_str().to_string().into(),
        );
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                // JsonFields stores each span's fields as a JSON object.
                let Some(fields) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields) {
                    for key in INVOCATION_FIELDS {
                        if let Some(value) = fields.get(key) {
                            line.insert(key.into(), value.clone());
                        }
                    }
                }
            }
        }
        event.record(&mut Fields(&mut line));
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Collects an event's fields (its message among them) as JSON values.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn lambdas_level_control_wins_over_rust_log() {
        assert_eq!(level_directive(None, None), "info");
        assert_eq!(
            level_directive(None, Some("debug,tract=warn")),
            "debug,tract=warn"
        );
        assert_eq!(level_directive(Some("WARN"), Some("debug")), "warn");
        assert_eq!(level_directive(Some("FATAL"), None), "error");
        assert_eq!(level_directive(Some(" "), Some("trace")), "trace");
    }

    /// A writer the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_inside_an_invocation_carry_its_ids() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonFields::new())
            .event_format(LambdaJson)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(ready = true, "before");
            // As lambda_runtime's trace layer opens it.
            let span = tracing::info_span!(
                "Lambda runtime invoke",
                requestId = "8f5e-req",
                xrayTraceId = "Root=1-abc"
            );
            let _entered = span.enter();
            tracing::warn!(status = 400, duration_ms = 1.5, "request rejected");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["message"], "before");
        assert_eq!(lines[0]["ready"], true);
        assert!(lines[0].get("requestId").is_none(), "{}", lines[0]);
        let inside = &lines[1];
        assert_eq!(inside["level"], "WARN");
        assert_eq!(inside["message"], "request rejected");
        assert_eq!(inside["requestId"], "8f5e-req");
        assert_eq!(inside["xrayTraceId"], "Root=1-abc");
        assert_eq!(inside["status"], 400);
        assert_eq!(inside["duration_ms"], 1.5);
        assert!(
            inside["timestamp"].as_str().unwrap().ends_with('Z'),
            "{inside}"
        );
    }
}
