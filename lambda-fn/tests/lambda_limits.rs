//! The emulator holds a function to the memory Lambda gives its memory size: a request that
//! needs more is answered as Lambda answers an out-of-memory kill, and the next event starts
//! a new process; ours (the text fixture, MiniLM) refuses such a request before allocating.
//! The CPU share is tested in `cpu_share.rs`, alone in its process.

use std::time::Duration;

use runtime_emulator::{Function, FunctionConfig, Outcome};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(120);

/// Lambda's default-ish small size: onnxruntime with MiniLM fp32 initialises in it, but
/// 256 texts of 128 tokens need far more (the attention scores alone are 12 heads × 128² ×
/// 256 floats, 200 MB).
const TIGHT_MB: u32 = 256;

/// The bench's Python function (awslambdaric + onnxruntime + MiniLM fp32): unlike ours it
/// has no memory guard, so a request can take it past its memory size.
fn python_minilm(memory_mb: u32) -> FunctionConfig {
    let data = test_support::fixture_path("TEST_DATA_DIR");
    let mut c = FunctionConfig::new(test_support::fixture_path("BENCH_PYTHON"))
        .memory_mb(memory_mb)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env(
            "PYTHONPATH",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../xtask/bench"),
        )
        .env("BENCH_KIND", "text")
        .env(
            "MODEL_PATH",
            data.join("paraphrase-MiniLM-L3-v2.onnx").to_string_lossy(),
        )
        .env(
            "TOKENIZER_PATH",
            data.join("minilm-tokenizer.json").to_string_lossy(),
        )
        .env("TEXT_OUTPUT", "onnx::Shape_422");
    c.args = vec!["-m".into(), "awslambdaric".into(), "handler.handler".into()];
    c
}

/// Ours: the text fixture, loading only the model asked for.
fn config(memory_mb: u32) -> FunctionConfig {
    FunctionConfig::new(test_support::fixture_path("TEXT_BOOTSTRAP"))
        .memory_mb(memory_mb)
        .env("MODEL_THREADS", "1")
        .env("MODEL_LOAD", "lazy")
}

/// `n` texts of about 120 words each (truncated to 128 tokens).
fn long_texts(n: usize) -> Value {
    let text = "the quick brown fox jumps over the lazy dog and keeps running ".repeat(12);
    json!({ "text": vec![text; n] })
}

async fn invoke(f: &Function, request: &Value) -> Outcome {
    f.invoke(serde_json::to_vec(request).unwrap(), TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{e}\nlogs:\n{}", f.logs().join("\n")))
}

fn answered(outcome: &Outcome, f: &Function) -> Value {
    match outcome {
        Outcome::Response(_) => outcome.json(),
        other => panic!("{other:?}\nlogs:\n{}", f.logs().join("\n")),
    }
}

#[tokio::test]
async fn a_request_past_the_memory_size_is_an_out_of_memory_error_and_the_next_one_reinitialises() {
    test_support::require_fixtures!("BENCH_PYTHON", "TEST_DATA_DIR");
    test_support::require_root!("Lambda's memory limit is a cgroup");
    let f = Function::start(python_minilm(TIGHT_MB)).await.unwrap();
    assert!(
        f.limited().await,
        "this machine cannot hold the function to Lambda's limits (see the warning above); the test needs writable cgroups (root)"
    );
    let small = json!({"text": ["a short sentence"]});
    let first = answered(&invoke(&f, &small).await, &f);
    let pid = f.pid().await;

    match invoke(&f, &long_texts(256)).await {
        Outcome::Error { error_type, body } => {
            assert_eq!(error_type.as_deref(), Some("Runtime.OutOfMemory"));
            let doc: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(doc["errorType"], "Runtime.OutOfMemory");
            let message = doc["errorMessage"].as_str().unwrap();
            assert!(
                message.starts_with("RequestId: ")
                    && message.ends_with("Error: Runtime exited with error: signal: killed"),
                "{message}"
            );
        }
        other => panic!(
            "256 long texts in {TIGHT_MB} MB were answered: {other:?}\nlogs:\n{}",
            f.logs().join("\n")
        ),
    }

    // The next event initialises a new process and is served as the first one was.
    let again = answered(&invoke(&f, &small).await, &f);
    assert_eq!(again, first);
    assert_ne!(f.pid().await, pid, "a new process answered");
    let inits = f.logs().iter().filter(|l| l.contains("bench_init")).count();
    assert_eq!(inits, 2, "{}", f.logs().join("\n"));
    let used = f
        .max_memory_used()
        .await
        .expect("the cgroup keeps its peak");
    assert!(used <= u64::from(TIGHT_MB) << 20, "{used}");
}

/// Ours never gets there: at the same size it answers its largest batch of long texts, and
/// at Lambda's smallest size it refuses that batch (413) before allocating for it — the
/// same process serving on, never killed.
#[tokio::test]
async fn ours_answers_what_fits_and_refuses_the_rest_without_dying() {
    test_support::require_fixtures!("TEXT_BOOTSTRAP");
    test_support::require_root!("Lambda's memory limit is a cgroup");
    let small = json!({"model": "minilm", "text": ["a short sentence"]});
    let mut big = long_texts(16);
    big["model"] = json!("minilm");
    for (memory_mb, want) in [(TIGHT_MB, 200), (128, 413)] {
        let f = Function::start(config(memory_mb)).await.unwrap();
        assert!(f.limited().await, "needs writable cgroups (root)");
        answered(&invoke(&f, &small).await, &f);
        let pid = f.pid().await;
        let answer = answered(&invoke(&f, &big).await, &f);
        let status = answer.get("status").and_then(Value::as_u64).unwrap_or(200);
        let error = answer["error"].as_str().unwrap_or_default();
        assert_eq!(status, want, "{memory_mb} MB: {error}");
        if want == 413 {
            assert!(error.contains("raise the function's memory"), "{error}");
        }
        answered(&invoke(&f, &small).await, &f);
        assert_eq!(
            f.pid().await,
            pid,
            "{memory_mb} MB: the same process, never killed"
        );
        f.kill().await;
    }
}
