//! End to end: the real `bootstrap` binary (built once by cargo for this test target) under
//! the Runtime API emulator, serving the embedded default model.

use std::path::{Path, PathBuf};
use std::time::Duration;

use runtime_emulator::{events, EmulatorError, Function};
use serde_json::{json, Value};
use test_support::default_samples as samples;
use test_support::function::{invoke, log_lines, start as start_binary, TIMEOUT};

fn root() -> PathBuf {
    test_support::workspace_root()
}

fn lock() -> model_lock::LockFile {
    model_lock::LockFile::read(&root().join("models/packed/models.lock")).unwrap()
}

async fn start(env: &[(&str, &str)]) -> Function {
    start_binary(Path::new(env!("CARGO_BIN_EXE_bootstrap")), env).await
}

/// Sends `body` as an HTTP API v2 event; returns (status, parsed body, content-type).
async fn http_v2(f: &Function, body: &[u8], base64: bool) -> (u64, Value, String) {
    let event = events::apigw_v2(
        "POST",
        "/",
        &[("content-type".into(), "application/json".into())],
        body,
        base64,
    );
    http_answer(invoke(f, &event).await)
}

fn http_answer(resp: Value) -> (u64, Value, String) {
    let status = resp["statusCode"].as_u64().expect("statusCode");
    let ct = resp["headers"]["content-type"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let body: Value =
        serde_json::from_str(resp["body"].as_str().expect("body")).expect("JSON body");
    (status, body, ct)
}

fn assert_matches_sklearn(resp: &Value, rows: &[Value]) {
    let probs = resp["outputs"]["probabilities"]
        .as_array()
        .expect("probabilities");
    let labels = resp["outputs"]["label"].as_array().expect("label");
    assert_eq!(probs.len(), rows.len());
    for (i, row) in rows.iter().enumerate() {
        let want = row["probabilities"].as_array().unwrap();
        let got = probs[i].as_array().unwrap();
        for (g, w) in got.iter().zip(want) {
            let (g, w) = (g.as_f64().unwrap(), w.as_f64().unwrap());
            assert!(
                (g - w).abs() <= 1e-5,
                "row {i}: probability {g} vs scikit-learn {w}"
            );
        }
        assert_eq!(
            labels[i].as_i64().unwrap(),
            row["class"].as_i64().unwrap(),
            "row {i} class"
        );
        assert_eq!(resp["labels"][i], row["label"], "row {i} label name");
    }
    assert_eq!(resp["prediction"], resp["outputs"]["label"]);
}

#[tokio::test]
async fn every_sample_row_matches_scikit_learn() {
    let f = start(&[]).await;
    let samples = samples();
    let rows = samples["rows"].as_array().unwrap();
    let sha = &lock().models[0].sha256;
    for row in rows {
        let resp = invoke(
            &f,
            &json!({"model": "breast-cancer", "features": row["features"]}),
        )
        .await;
        assert_eq!(resp["model"], "breast-cancer");
        assert_eq!(resp["source"], "embedded");
        assert_eq!(resp["model_version"].as_str().unwrap(), &sha[..12]);
        assert_matches_sklearn(&resp, std::slice::from_ref(row));
    }
}

#[tokio::test]
async fn batches_and_named_inputs_and_return_filter() {
    let f = start(&[]).await;
    let samples = samples();
    let rows = samples["rows"].as_array().unwrap();
    let batch: Vec<Value> = rows.iter().map(|r| r["features"].clone()).collect();

    // Shorthand batch, model omitted (the manifest names a default).
    let resp = invoke(&f, &json!({"features": batch})).await;
    assert_matches_sklearn(&resp, rows);

    // Named inputs, the generic form.
    let resp = invoke(&f, &json!({"inputs": {"features": batch}})).await;
    assert_matches_sklearn(&resp, rows);

    // "return" limits outputs; prediction is the first returned output.
    let resp = invoke(&f, &json!({"features": batch, "return": ["probabilities"]})).await;
    assert!(resp["outputs"].get("label").is_none());
    assert_eq!(resp["prediction"], resp["outputs"]["probabilities"]);
    assert_eq!(resp["labels"].as_array().unwrap().len(), rows.len());
}

#[tokio::test]
async fn api_gateway_v1_v2_and_function_url_events() {
    let f = start(&[]).await;
    let samples = samples();
    let row = &samples["rows"][3];
    let body = serde_json::to_vec(&json!({"features": row["features"]})).unwrap();

    let (status, resp, ct) = http_v2(&f, &body, false).await;
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    assert_matches_sklearn(&resp, std::slice::from_ref(row));

    // Base64 bodies (binary media types, Function URLs) are decoded.
    let (status, resp, _) = http_v2(&f, &body, true).await;
    assert_eq!(status, 200);
    assert_matches_sklearn(&resp, std::slice::from_ref(row));

    let v1 = events::apigw_v1("POST", "/predict", &body, false);
    let (status, resp, ct) = http_answer(invoke(&f, &v1).await);
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    assert_matches_sklearn(&resp, std::slice::from_ref(row));
    let v1 = events::apigw_v1("POST", "/predict", &body, true);
    let (status, resp, _) = http_answer(invoke(&f, &v1).await);
    assert_eq!(status, 200);
    assert_matches_sklearn(&resp, std::slice::from_ref(row));

    // GET lists the models and their signatures.
    let get = events::apigw_v2("GET", "/", &[], b"", false);
    let (status, resp, _) = http_answer(invoke(&f, &get).await);
    assert_eq!(status, 200);
    assert_eq!(resp["default_model"], "breast-cancer");
    assert_eq!(resp["models"][0]["inputs"][0]["name"], "features");
    assert_eq!(resp["models"][0]["labels"], json!(["malignant", "benign"]));
}

#[tokio::test]
async fn bad_requests_get_clear_answers() {
    let f = start(&[]).await;
    let row: Vec<f64> = vec![1.0; 30];
    let cases: Vec<(Vec<u8>, u64, &str)> = vec![
        (b"{\"features\": [1, 2".to_vec(), 400, "malformed JSON"),
        (b"[1, 2, 3]".to_vec(), 400, "JSON object"),
        (json!({"features": "abc"}).to_string().into_bytes(), 400, "\"features\" must be an array"),
        (json!({"model": 7, "features": row}).to_string().into_bytes(), 400, "\"model\" must be a string"),
        (json!({"features": [row.clone(), vec![1.0; 29]]}).to_string().into_bytes(), 400, "ragged"),
        (json!({"features": [[row.clone()]]}).to_string().into_bytes(), 400, "expected a scalar"),
        (json!({"features": vec![1.0; 29]}).to_string().into_bytes(), 400, "axis 1 has size 29, but the model expects 30"),
        (json!({"features": [1, "x", 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30]}).to_string().into_bytes(), 400, "features[0][1]: expected a number"),
        (json!({"features": [vec![true; 30]]}).to_string().into_bytes(), 400, "expected a number"),
        (json!({"inputs": {"nope": [row.clone()]}}).to_string().into_bytes(), 400, "has no input \"nope\""),
        (json!({"inputs": {}}).to_string().into_bytes(), 400, "missing input \"features\""),
        (json!({"features": row, "return": ["nope"]}).to_string().into_bytes(), 400, "has no output \"nope\""),
        (json!({"model": "no-such-model", "features": row}).to_string().into_bytes(), 404, "unknown model \"no-such-model\""),
        (json!({"model": "../etc/passwd", "features": row}).to_string().into_bytes(), 400, "does not match"),
        (b"".to_vec(), 400, "empty request body"),
    ];
    for (body, status, needle) in &cases {
        let (got, resp, ct) = http_v2(&f, body, false).await;
        let text = String::from_utf8_lossy(body);
        assert_eq!(got, *status, "{text}: {resp}");
        assert_eq!(ct, "application/json");
        assert_eq!(resp["status"], json!(status), "{text}");
        let msg = resp["error"].as_str().unwrap();
        assert!(
            msg.contains(needle),
            "{text}: {msg:?} should mention {needle:?}"
        );
    }
    // 404 lists what is there.
    let (_, resp, _) = http_v2(&f, &cases[12].0, false).await;
    assert_eq!(resp["available_models"], json!(["breast-cancer"]));

    // Over 6 MB: Lambda refuses the event before the function runs, plain and base64.
    let big = format!("{{\"features\": [{}]}}", "1.0,".repeat(1_600_000) + "1.0");
    assert!(big.len() > 6 * 1024 * 1024);
    for base64 in [false, true] {
        let event = events::apigw_v2("POST", "/", &[], big.as_bytes(), base64);
        let refused = f
            .invoke(serde_json::to_vec(&event).unwrap(), Duration::from_secs(60))
            .await;
        assert!(
            matches!(refused, Err(EmulatorError::RequestTooLarge(_))),
            "{refused:?}"
        );
    }

    // Invalid base64.
    let mut event = events::apigw_v2("POST", "/", &[], b"x", true);
    event["body"] = json!("@@not base64@@");
    let (status, resp, _) = http_answer(invoke(&f, &event).await);
    assert_eq!(status, 400);
    assert!(resp["error"].as_str().unwrap().contains("base64"));

    // Direct invocations get the same error objects, as the payload.
    let resp = invoke(&f, &json!({"features": [[1.0, 2.0]]})).await;
    assert_eq!(resp["status"], 400);
    assert!(resp["error"].as_str().unwrap().contains("expects 30"));
    let resp = invoke(&f, &json!({"model": "nope", "features": row})).await;
    assert_eq!(resp["status"], 404);

    // The function is still healthy after all of that.
    let samples = samples();
    let ok = invoke(&f, &json!({"features": samples["rows"][0]["features"]})).await;
    assert_matches_sklearn(&ok, std::slice::from_ref(&samples["rows"][0]));
}

#[tokio::test]
async fn lazy_loading_serves_on_first_use_and_logs_phases() {
    let f = start(&[("MODEL_LOAD", "lazy")]).await;
    let samples = samples();
    let resp = invoke(&f, &json!({"features": samples["rows"][1]["features"]})).await;
    assert_matches_sklearn(&resp, std::slice::from_ref(&samples["rows"][1]));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = f.logs();
    let loaded = log_lines(&f, "model loaded");
    assert_eq!(loaded.len(), 1, "one load line: {logs:?}");
    for phase in ["verify_ms", "decode_ms", "optimize_ms"] {
        assert!(loaded[0][phase].is_number(), "{phase} in {}", loaded[0]);
    }
    assert_eq!(loaded[0]["source"], "embedded");
    assert!(logs
        .iter()
        .any(|l| l.contains("\"message\":\"request\"") && l.contains("duration_ms")));
}

#[tokio::test]
async fn bad_load_mode_is_an_init_error() {
    let f = start(&[("MODEL_LOAD", "sometimes")]).await;
    match f.invoke(b"{}".to_vec(), TIMEOUT).await {
        Err(EmulatorError::Init(doc)) => {
            assert!(
                doc["errorMessage"].as_str().unwrap().contains("MODEL_LOAD"),
                "{doc}"
            );
        }
        other => panic!("expected an init error, got {other:?}"),
    }
}

/// Flip one byte inside the model bytes embedded in a copy of the real binary: the function
/// must refuse to start, naming the model and both hashes, and never answer.
#[tokio::test]
async fn corrupted_embedded_model_is_an_init_error() {
    let lock = lock();
    let entry = &lock.models[0];
    let packed = std::fs::read(root().join("models/packed").join(&entry.file)).unwrap();
    let mut binary = std::fs::read(env!("CARGO_BIN_EXE_bootstrap")).unwrap();
    let at = binary
        .windows(packed.len())
        .position(|w| w == packed.as_slice())
        .expect("packed model bytes are inside the binary");
    assert_eq!(at % 64, 0, "embedded model is 64-byte aligned in the file");
    binary[at + packed.len() / 2] ^= 0x01;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bootstrap");
    std::fs::write(&path, &binary).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let f = start_binary(&path, &[] as &[(&str, &str)]).await;
    let samples = samples();
    let request = json!({"features": samples["rows"][0]["features"]});
    match f
        .invoke(serde_json::to_vec(&request).unwrap(), TIMEOUT)
        .await
    {
        Err(EmulatorError::Init(doc)) => {
            let msg = doc["errorMessage"].as_str().unwrap();
            assert!(msg.contains("breast-cancer"), "{msg}");
            assert!(msg.contains("checksum mismatch"), "{msg}");
            assert!(msg.contains(&entry.sha256), "expected hash in {msg}");
            let actual = inference_core::sha256_hex(&binary[at..at + packed.len()]);
            assert!(msg.contains(&actual), "actual hash {actual} in {msg}");
            assert_eq!(doc["errorType"], "Runtime.InitError");
        }
        other => panic!("expected an init error, got {other:?}"),
    }
    let status = f
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("process exits");
    assert!(!status.success());
}
