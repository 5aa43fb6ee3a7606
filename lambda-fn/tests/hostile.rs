//! Requests written to break the function, through the real `bootstrap` serving the embedded
//! default model: every one gets its documented status and a JSON body, nothing crashes the
//! function, and a normal request after each is still answered.

use std::path::Path;

use runtime_emulator::events;
use serde_json::{json, Value};
use test_support::hostile::{self, Case};

fn row() -> Vec<f64> {
    test_support::default_samples()["rows"][0]["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn v2(method: &str, body: &[u8], base64: bool) -> Value {
    let headers = [("content-type".to_string(), "application/json".to_string())];
    events::apigw_v2(method, "/", &headers, body, base64)
}

fn direct_cases() -> Vec<Case> {
    let r = row();
    let with = |i: usize, v: Value| {
        let mut row: Vec<Value> = r.iter().map(|x| json!(x)).collect();
        row[i] = v;
        json!({ "features": row })
    };
    let huge = "x".repeat(1_000_000);
    vec![
        Case::raw("an array", "[]", 400, "JSON object"),
        Case::raw("a string", "\"hello\"", 400, "JSON object"),
        Case::raw("a number", "42", 400, "JSON object"),
        Case::raw("null", "null", 400, "JSON object"),
        Case::raw("an empty object", "{}", 400, "missing field"),
        Case::raw(
            "duplicate keys",
            format!("{{\"features\": {r:?}, \"features\": {r:?}}}"),
            400,
            "duplicate key",
        ),
        Case::raw(
            "nested duplicate keys",
            "{\"inputs\": {\"features\": [], \"features\": []}}",
            400,
            "duplicate key",
        ),
        Case::raw(
            "nesting past serde's limit",
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
            400,
            "recursion limit",
        ),
        Case::raw(
            "nested objects past the limit",
            format!("{}1{}", "{\"a\":".repeat(5000), "}".repeat(5000)),
            400,
            "recursion limit",
        ),
        Case::raw(
            "a lone surrogate",
            "{\"model\": \"\\ud800\", \"features\": []}",
            400,
            "malformed JSON",
        ),
        Case::json(
            "features as a string",
            &json!({"features": "abc"}),
            400,
            "must be an array",
        ),
        Case::json(
            "features as an object",
            &json!({"features": {"a": 1}}),
            400,
            "must be an array",
        ),
        Case::json("no features", &json!({"features": []}), 400, "expects 30"),
        Case::json(
            "an empty row",
            &json!({"features": [[]]}),
            400,
            "expects 30",
        ),
        Case::json(
            "29 features",
            &json!({"features": &r[..29]}),
            400,
            "expects 30",
        ),
        Case::json(
            "31 features",
            &json!({"features": [r.clone(), vec![0.0; 31]]}),
            400,
            "ragged",
        ),
        Case::json(
            "rank 3",
            &json!({"features": [[r.clone()]]}),
            400,
            "expected a scalar",
        ),
        Case::json(
            "booleans",
            &json!({"features": [vec![true; 30]]}),
            400,
            "expected a number",
        ),
        Case::json(
            "a word among numbers",
            &with(4, json!("x")),
            400,
            "expected a number",
        ),
        Case::json(
            "null among numbers",
            &with(4, json!(null)),
            400,
            "expected a number",
        ),
        Case::json(
            "1e39 for an f32",
            &with(0, json!(1e39)),
            400,
            "out of range for f32",
        ),
        Case::json(
            "-1e300 for an f32",
            &with(0, json!(-1e300)),
            400,
            "out of range for f32",
        ),
        Case::json(
            "Infinity spelled out is allowed",
            &with(0, json!("Infinity")),
            200,
            "",
        ),
        Case::json(
            "model as a number",
            &json!({"model": 7, "features": r}),
            400,
            "must be a string",
        ),
        Case::json(
            "model as a path",
            &json!({"model": "../etc/passwd", "features": r}),
            400,
            "does not match",
        ),
        Case::json(
            "a megabyte model name",
            &json!({"model": huge, "features": r}),
            400,
            "does not match",
        ),
        Case::json(
            "an unknown model",
            &json!({"model": "nope", "features": r}),
            404,
            "unknown model",
        ),
        Case::json(
            "an unknown field",
            &json!({"colour": 1, "features": r}),
            400,
            "unknown field",
        ),
        Case::json(
            "a megabyte field name",
            &json!({ huge.clone(): 1 }),
            400,
            "unknown field",
        ),
        Case::json(
            "inputs as an array",
            &json!({"inputs": [r]}),
            400,
            "must be an object",
        ),
        Case::json("no inputs", &json!({"inputs": {}}), 400, "missing input"),
        Case::json(
            "an unknown input",
            &json!({"inputs": {"nope": [r]}}),
            400,
            "has no input",
        ),
        Case::json(
            "a megabyte input name",
            &json!({"inputs": { huge.clone(): [r] }}),
            400,
            "has no input",
        ),
        Case::json(
            "an unknown output",
            &json!({"features": r, "return": ["nope"]}),
            400,
            "has no output",
        ),
        Case::json(
            "a megabyte output name",
            &json!({"features": r, "return": [huge]}),
            400,
            "has no output",
        ),
        Case::json(
            "return as a string",
            &json!({"features": r, "return": "label"}),
            400,
            "array of output names",
        ),
        Case::json(
            "return of numbers",
            &json!({"features": r, "return": [1]}),
            400,
            "array of output names",
        ),
        Case::json(
            "text to a tensor model",
            &json!({"text": "hello"}),
            400,
            "tokenizer",
        ),
        Case::json(
            "two kinds of input",
            &json!({"features": r, "text": "x"}),
            400,
            "not several",
        ),
        // The manifest caps the default model's batch (`[model.limits]`), checked before
        // the model runs. Answers past Lambda's response limit are exercised through the
        // text model's suite.
        Case::raw(
            "one row past the batch cap",
            format!(
                "{{\"features\": [{}]}}",
                vec![format!("[{}]", vec!["0"; 30].join(",")); 4097].join(",")
            ),
            413,
            "(4096, limits.max_dims.batch)",
        ),
        // 250,000 rows are a 15.5 MB request: Lambda refuses it before the function runs.
        Case::over_lambdas_limit(
            "rows whose request is past Lambda's payload limit",
            format!(
                "{{\"features\": [{}]}}",
                vec![format!("[{}]", vec!["0"; 30].join(",")); 250_000].join(",")
            ),
        ),
        Case::raw(
            "as many rows as the cap allows",
            format!(
                "{{\"features\": [{}]}}",
                vec![format!("[{}]", vec!["0"; 30].join(",")); 4096].join(",")
            ),
            200,
            "",
        ),
        Case::refused(
            "an SQS batch",
            &json!({"Records": [{"eventSource": "aws:sqs", "messageId": "1", "body": "{}"}]}),
        ),
        Case::refused(
            "an SNS notification",
            &json!({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "{}"}}]}),
        ),
        Case::refused(
            "an S3 notification",
            &json!({"Records": [{"eventSource": "aws:s3", "s3": {}}]}),
        ),
        Case::refused(
            "an EventBridge event",
            &json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}),
        ),
    ]
}

fn http_cases() -> Vec<Case> {
    let body = serde_json::to_vec(&json!({ "features": row() })).unwrap();
    let mut bad_flag = v2("POST", &body, false);
    bad_flag["isBase64Encoded"] = json!("yes");
    let mut bad_base64 = v2("POST", b"", true);
    bad_base64["body"] = json!("@@not base64@@");
    let mut no_body = v2("POST", b"", false);
    no_body.as_object_mut().unwrap().remove("body");
    vec![
        Case::json("HTTP: no body", &no_body, 400, "empty request body"),
        Case::json(
            "HTTP: an empty body",
            &v2("POST", b"", false),
            400,
            "empty request body",
        ),
        Case::json(
            "HTTP: not JSON",
            &v2("POST", b"features=1", false),
            400,
            "malformed JSON",
        ),
        Case::json(
            "HTTP: a byte-order mark",
            &v2("POST", "\u{feff}{}".as_bytes(), false),
            400,
            "malformed JSON",
        ),
        Case::json("HTTP: bad base64", &bad_base64, 400, "base64"),
        Case::json(
            "HTTP: base64 of bytes that are not UTF-8",
            &v2("POST", b"{\"features\": \"\xff\xfe\"}", true),
            400,
            "UTF-8",
        ),
        Case::json(
            "HTTP: duplicate keys",
            &v2("POST", b"{\"features\": [1], \"features\": [2]}", false),
            400,
            "duplicate key",
        ),
        // Lambda refuses such events before the function runs (the function's own 413 for
        // them is unit-tested in inference-core).
        Case::over_lambdas_limit(
            "HTTP: a body over 6 MB",
            serde_json::to_vec(&v2("POST", &vec![b' '; 6 * 1024 * 1024 + 1], false)).unwrap(),
        ),
        Case::over_lambdas_limit(
            "HTTP: a base64 body over 6 MB",
            serde_json::to_vec(&v2("POST", &vec![b' '; 6 * 1024 * 1024 + 1], true)).unwrap(),
        ),
        Case::json(
            "HTTP: DELETE",
            &v2("DELETE", &body, false),
            400,
            "not supported",
        ),
        Case::json(
            "HTTP v1: PATCH",
            &events::apigw_v1("PATCH", "/", &body, false),
            400,
            "not supported",
        ),
        Case::json(
            "HTTP: a malformed event",
            &bad_flag,
            400,
            "malformed API Gateway event",
        ),
        Case::json(
            "HTTP: GET lists the models",
            &v2("GET", b"", false),
            200,
            "",
        ),
        Case::json(
            "HTTP v1: a good request",
            &events::apigw_v1("POST", "/", &body, false),
            200,
            "",
        ),
    ]
}

#[tokio::test]
async fn hostile_requests_get_their_documented_answers() {
    let bootstrap = Path::new(env!("CARGO_BIN_EXE_bootstrap"));
    let f =
        test_support::function::start(bootstrap, &[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")])
            .await;
    let cases: Vec<Case> = direct_cases().into_iter().chain(http_cases()).collect();
    assert!(cases.len() >= 55, "{} cases", cases.len());
    hostile::run(&f, &cases, &json!({ "features": row() })).await;
    // The whole suite within a small fraction of the 1,024 MB the function is given.
    let peak = f.peak_rss_kib().await.expect("the function is running");
    eprintln!("peak RSS over the suite: {} MiB", peak / 1024);
    assert!(peak < 512 * 1024, "peak RSS {peak} KiB");
}
