//! The emulator gives the real `bootstrap` the CPU share Lambda gives its memory size: a
//! quarter of a vCPU takes about four times as long as a whole one for the same CPU-bound
//! request. A test binary of its own, so no other test shares the cores while it measures.

use std::time::Duration;

use runtime_emulator::{Function, FunctionConfig, Limits, Outcome};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(120);

fn answered(outcome: Outcome, f: &Function) -> Value {
    match outcome {
        Outcome::Response(_) => outcome.json(),
        other => panic!("{other:?}\nlogs:\n{}", f.logs().join("\n")),
    }
}

/// The median of the function's own `duration_ms` for `n` runs of `request`.
async fn median_ms(f: &Function, request: &Value, n: usize) -> f64 {
    let before = test_support::function::log_lines(f, "request").len();
    for _ in 0..n {
        let outcome = f
            .invoke(serde_json::to_vec(request).unwrap(), TIMEOUT)
            .await
            .unwrap();
        answered(outcome, f);
    }
    let mut ms: Vec<f64> = test_support::function::log_lines(f, "request")[before..]
        .iter()
        .map(|l| l["duration_ms"].as_f64().unwrap())
        .collect();
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

#[tokio::test]
async fn the_cpu_share_follows_the_memory_size() {
    test_support::require_fixtures!("TEXT_BOOTSTRAP");
    test_support::require_root!("Lambda's CPU share is a cgroup");
    // One vCPU against a quarter of one, for the same one-thread request.
    let (full, quarter) = (1769, 442);
    assert!((Limits::lambda(full).vcpus() / Limits::lambda(quarter).vcpus() - 4.0).abs() < 0.01);
    let text = "the quick brown fox jumps over the lazy dog and keeps running ".repeat(12);
    let request = json!({"model": "minilm", "text": vec![text; 4]});
    let mut medians = Vec::new();
    for memory_mb in [full, quarter] {
        // One thread, one core, the model loaded on first use.
        let mut config = FunctionConfig::new(test_support::fixture_path("TEXT_BOOTSTRAP"))
            .memory_mb(memory_mb)
            .env("MODEL_THREADS", "1")
            .env("MODEL_LOAD", "lazy");
        config.cpus = Some("0".into());
        let f = Function::start(config).await.unwrap();
        assert!(f.limited().await, "needs writable cgroups (root)");
        median_ms(&f, &request, 1).await; // first use: loads the model
        medians.push(median_ms(&f, &request, 5).await);
        f.kill().await;
    }
    let ratio = medians[1] / medians[0];
    // A quarter of the CPU takes about four times as long; a shared machine adds noise, so
    // this only asserts the proportion is there, not its exact value.
    assert!(
        (2.5..6.0).contains(&ratio),
        "{full} MB: {:.1} ms, {quarter} MB: {:.1} ms, ratio {ratio:.2} (about 4 expected)",
        medians[0],
        medians[1]
    );
}
