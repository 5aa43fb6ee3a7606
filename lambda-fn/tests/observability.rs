//! What an operator sees, through the real `bootstrap` under the Runtime API emulator: log
//! lines carry the request id and trace id Lambda sent, and the metrics are CloudWatch EMF
//! documents that validate against AWS's published schema, with the right dimensions and
//! values.

use std::path::Path;
use std::time::Duration;

use runtime_emulator::{Function, Outcome};
use serde_json::{json, Value};
use test_support::default_samples as samples;
use test_support::function::{init_error, log_lines, start as start_binary, TIMEOUT};

/// The JSON schema the CloudWatch user guide publishes for an EMF document ("Specification:
/// Embedded metric format"), as published.
const EMF_SCHEMA: &str = "tests/fixtures/emf-schema.json";

const MODEL: &str = "breast-cancer";

async fn start(env: &[(&str, &str)]) -> Function {
    start_binary(Path::new(env!("CARGO_BIN_EXE_bootstrap")), env).await
}

async fn invoke_as(f: &Function, request_id: &str, trace_id: &str, request: &Value) -> Value {
    match f
        .invoke_as(
            request_id,
            trace_id,
            serde_json::to_vec(request).unwrap(),
            TIMEOUT,
        )
        .await
    {
        Ok(Outcome::Response(body)) => serde_json::from_slice(&body).unwrap(),
        other => panic!("{other:?}\nlogs:\n{}", f.logs().join("\n")),
    }
}

/// Every EMF document the function wrote, each checked for the rule the published schema
/// cannot say: every dimension and metric a directive names is a top-level member, a
/// dimension a string and a metric a number or at most 100 of them.
fn emf_documents(f: &Function) -> Vec<Value> {
    let docs: Vec<Value> = test_support::function::json_lines(f)
        .into_iter()
        .filter(|v| v.get("_aws").is_some())
        .collect();
    for doc in &docs {
        for directive in doc["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            for set in directive["Dimensions"].as_array().unwrap() {
                for name in set.as_array().unwrap() {
                    let value = &doc[name.as_str().unwrap()];
                    assert!(value.is_string(), "dimension {name} in {doc}");
                }
            }
            for metric in directive["Metrics"].as_array().unwrap() {
                let value = &doc[metric["Name"].as_str().unwrap()];
                let numbers = value.is_number()
                    || value.as_array().is_some_and(|a| {
                        !a.is_empty() && a.len() <= 100 && a.iter().all(Value::is_number)
                    });
                assert!(numbers, "metric {} in {doc}", metric["Name"]);
            }
        }
    }
    docs
}

/// The documents with exactly these dimensions (as a set) and dimension values.
fn with_dimensions<'a>(docs: &'a [Value], dims: &[(&str, &str)]) -> Vec<&'a Value> {
    docs.iter()
        .filter(|d| {
            let directive = &d["_aws"]["CloudWatchMetrics"][0];
            let set = directive["Dimensions"][0].as_array().unwrap();
            set.len() == dims.len()
                && dims
                    .iter()
                    .all(|(k, v)| set.iter().any(|s| s == k) && d[k] == *v)
        })
        .collect()
}

/// A metric's value: a number, or the sum of an array of values.
fn value(doc: &Value, metric: &str) -> f64 {
    match &doc[metric] {
        Value::Array(values) => values.iter().map(|v| v.as_f64().unwrap()).sum(),
        v => v.as_f64().unwrap_or_else(|| panic!("{metric} in {doc}")),
    }
}

fn unit(doc: &Value, metric: &str) -> String {
    doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Name"] == metric)
        .and_then(|m| m["Unit"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn logs_carry_lambdas_ids_and_metrics_are_emf() {
    let f = start(&[("MODEL_METRICS_NAMESPACE", "Test/Onnx")]).await;
    let rows = samples()["rows"].clone();
    let ok_id = "0a1b2c3d-0000-4000-8000-000000000001";
    let ok_trace = "Root=1-6750a1b2-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1";
    let batch = json!({"features": [rows[0]["features"], rows[1]["features"]]});
    let answer = invoke_as(&f, ok_id, ok_trace, &batch).await;
    assert_eq!(answer["model"], MODEL, "{answer}");

    let bad_id = "0a1b2c3d-0000-4000-8000-000000000002";
    let bad_trace = "Root=1-6750a1b2-89abcdef0123456701234567;Sampled=0";
    let answer = invoke_as(&f, bad_id, bad_trace, &json!({"features": "x"})).await;
    assert_eq!(answer["status"], 400, "{answer}");
    // Metrics are written after the answer is sent: wait for the second request's.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Log lines: Lambda's JSON shape, with the ids while answering, without them at init.
    let ready = log_lines(&f, "ready");
    assert_eq!(ready.len(), 1);
    assert!(ready[0].get("requestId").is_none(), "{}", ready[0]);
    let served = log_lines(&f, "request");
    assert_eq!(served.len(), 1, "{:?}", f.logs());
    assert_eq!(served[0]["requestId"], ok_id);
    assert_eq!(served[0]["xrayTraceId"], ok_trace);
    assert_eq!(served[0]["level"], "INFO");
    assert!(served[0]["timestamp"].is_string());
    let rejected = log_lines(&f, "request rejected");
    assert_eq!(rejected.len(), 1, "{:?}", f.logs());
    assert_eq!(rejected[0]["requestId"], bad_id);
    assert_eq!(rejected[0]["status"], 400);

    // Metrics.
    let docs = emf_documents(&f);
    for doc in &docs {
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "Test/Onnx"
        );
    }
    let loads = with_dimensions(&docs, &[("Model", MODEL), ("ModelSource", "embedded")]);
    assert_eq!(loads.len(), 1, "one load at init: {docs:#?}");
    assert!(loads[0].get("requestId").is_none(), "init is no request's");
    assert!(value(loads[0], "ModelLoadTime") > 0.0);
    assert_eq!(unit(loads[0], "ModelLoadTime"), "Milliseconds");
    assert!(
        loads[0].get("FallbackLoads").is_none(),
        "the embedded copy served"
    );

    let ok = with_dimensions(
        &docs,
        &[
            ("Model", MODEL),
            ("ModelSource", "embedded"),
            ("StatusClass", "2xx"),
        ],
    );
    assert_eq!(ok.len(), 1, "{docs:#?}");
    assert_eq!(ok[0]["requestId"], ok_id);
    assert_eq!(ok[0]["xrayTraceId"], ok_trace);
    assert_eq!(value(ok[0], "Requests"), 1.0);
    assert_eq!(value(ok[0], "Rows"), 2.0);
    assert!(value(ok[0], "Latency") > 0.0);
    assert_eq!(unit(ok[0], "Latency"), "Milliseconds");
    assert_eq!(unit(ok[0], "Requests"), "Count");

    let by_class = with_dimensions(&docs, &[("StatusClass", "4xx")]);
    assert_eq!(by_class.len(), 1, "{docs:#?}");
    assert_eq!(by_class[0]["requestId"], bad_id);
    assert_eq!(value(by_class[0], "Requests"), 1.0);
    let failed = with_dimensions(&docs, &[("Model", MODEL)]);
    assert_eq!(failed.len(), 1, "{docs:#?}");
    assert_eq!(failed[0]["requestId"], bad_id);
    assert_eq!(value(failed[0], "ValidationFailures"), 1.0);
    // The rejected request ran no model: it has no source and no rows.
    let rejected = with_dimensions(
        &docs,
        &[
            ("Model", MODEL),
            ("ModelSource", "none"),
            ("StatusClass", "4xx"),
        ],
    );
    assert_eq!(rejected.len(), 1, "{docs:#?}");
    assert!(rejected[0].get("Rows").is_none());

    // A second failed validation counts again, in its own invocation's document.
    invoke_as(
        &f,
        "third",
        "Root=1-6750a1b2-000000000000000000000003",
        &json!({"text": 1}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let docs = emf_documents(&f);
    let failed = with_dimensions(&docs, &[("Model", MODEL)]);
    assert_eq!(failed.len(), 2, "{docs:#?}");
    assert_eq!(failed[1]["requestId"], "third");
    assert_eq!(value(failed[1], "ValidationFailures"), 1.0);
}

#[tokio::test]
async fn metrics_can_be_turned_off_and_bad_settings_stop_init() {
    let f = start(&[("MODEL_METRICS", "off")]).await;
    let rows = samples()["rows"].clone();
    invoke_as(
        &f,
        "only",
        "Root=1-6750a1b2-000000000000000000000004",
        &json!({"features": rows[0]["features"]}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(emf_documents(&f).is_empty(), "{:?}", f.logs());
    assert_eq!(log_lines(&f, "request")[0]["requestId"], "only");

    let f = start(&[("MODEL_METRICS_NAMESPACE", "AWS/Lambda")]).await;
    let message = init_error(&f).await;
    assert!(message.contains("MODEL_METRICS_NAMESPACE"), "{message}");
}

/// Python's `jsonschema` (in moto's venv, which `cargo xtask test` builds: cfn-lint needs it)
/// validates every EMF line against the published schema.
#[tokio::test]
async fn emf_lines_validate_against_the_published_schema() {
    test_support::require_fixtures!("MOTO_SERVER");
    let f = start(&[]).await;
    let rows = samples()["rows"].clone();
    invoke_as(
        &f,
        "ok",
        "Root=1-6750a1b2-000000000000000000000005",
        &json!({"features": [rows[0]["features"]]}),
    )
    .await;
    invoke_as(
        &f,
        "bad",
        "Root=1-6750a1b2-000000000000000000000006",
        &json!({"features": 1}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let docs = emf_documents(&f);
    assert!(docs.len() >= 5, "init, the answer, the refusal: {docs:#?}");
    let dir = tempfile::tempdir().unwrap();
    let lines = dir.path().join("emf.jsonl");
    let text: Vec<String> = docs.iter().map(Value::to_string).collect();
    std::fs::write(&lines, text.join("\n")).unwrap();
    let python = test_support::fixture_path("MOTO_SERVER").with_file_name("python");
    // AWS's schema names no draft; its `$id` fragments are draft-07's style (2020-12, the
    // default when none is named, forbids them).
    let check = "import json, sys, jsonschema\n\
schema = json.load(open(sys.argv[1]))\n\
jsonschema.Draft7Validator.check_schema(schema)\n\
validator = jsonschema.Draft7Validator(schema)\n\
for line in open(sys.argv[2]):\n    validator.validate(json.loads(line))\n\
print('valid')";
    let out = std::process::Command::new(python)
        .args(["-c", check])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(EMF_SCHEMA))
        .arg(&lines)
        .output()
        .expect("python runs");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("valid"),
        "{}",
        test_support::output_text(&out)
    );
}
