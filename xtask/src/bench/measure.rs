//! Timing real function processes under the Runtime API emulator: cold starts (fresh
//! process → first response), warm latency over many invocations, and peak RSS. Both sides
//! are measured by the same code, through the same emulator, with the same request bytes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use runtime_emulator::{Function, FunctionConfig, Outcome};
use serde_json::Value;

use super::workloads::Workload;
use crate::latency::Stats;

/// Generous: a cold Python process on a slow machine, or batch 8 at sequence 128.
const TIMEOUT: Duration = Duration::from_secs(120);
/// Untimed calls before a warm measurement (the first pays for any lazy load).
const WARM_UP: usize = 3;
/// A warm measurement never has fewer samples than this, whatever the time cap.
const MIN_SAMPLES: usize = 10;

pub struct Cold {
    pub samples_ms: Vec<f64>,
    /// The init phases each process logged (`*_ms` fields), per run.
    pub phases: BTreeMap<String, Vec<f64>>,
    /// The matrix-product kernels the Rust function's plan uses (its `kernels` field).
    pub kernels: Option<String>,
}

/// `runs` fresh processes, each timed from spawn to its first response.
pub async fn cold(config: &FunctionConfig, request: &[u8], runs: usize) -> Result<Cold> {
    let mut samples = Vec::with_capacity(runs);
    let mut phases: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut kernels = None;
    for _ in 0..runs {
        let started = Instant::now();
        let function = Function::start(config.clone()).await?;
        let outcome = function.invoke(request.to_vec(), TIMEOUT).await;
        let elapsed = started.elapsed();
        response(&function, outcome)?;
        samples.push(elapsed.as_secs_f64() * 1000.0);
        let logs = function.logs();
        for (k, v) in init_phases(&logs) {
            phases.entry(k).or_default().push(v);
        }
        kernels = kernels.or_else(|| plan_kernels(&logs));
        function.kill().await;
    }
    Ok(Cold {
        samples_ms: samples,
        phases,
        kernels,
    })
}

/// A shape a warm process had not seen: its first request, the plan build that request
/// logged (ours), and the same request again.
pub struct NewShape {
    pub shape: String,
    pub first_ms: f64,
    pub build_ms: Option<f64>,
    pub again_ms: f64,
}

/// One process, warmed on `warm_up`; then each of `shapes` sent for the first time, then
/// again (the median of three).
pub async fn new_shapes(
    config: &FunctionConfig,
    warm_up: &[u8],
    shapes: &[(String, Vec<u8>)],
) -> Result<Vec<NewShape>> {
    let function = Function::start(config.clone()).await?;
    for _ in 0..WARM_UP {
        let outcome = function.invoke(warm_up.to_vec(), TIMEOUT).await;
        response(&function, outcome)?;
    }
    let mut measured = Vec::new();
    let builds = |function: &Function| -> Vec<f64> {
        function
            .logs()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["message"] == "plan built")
            .filter_map(|v| v["build_ms"].as_f64())
            .collect()
    };
    for (shape, request) in shapes {
        let time = || async {
            let started = Instant::now();
            let outcome = function.invoke(request.clone(), TIMEOUT).await;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            response(&function, outcome).map(|_| ms)
        };
        let before = builds(&function).len();
        let first_ms = time().await?;
        // The plan this first request built, if the side builds plans (ours) and it did.
        let build_ms = builds(&function).get(before).copied();
        let mut again = Vec::new();
        for _ in 0..3 {
            again.push(time().await?);
        }
        measured.push(NewShape {
            shape: shape.clone(),
            first_ms,
            build_ms,
            again_ms: Stats::of(&again).p50_ms,
        });
    }
    function.kill().await;
    Ok(measured)
}

/// Each workload's first answer: (input label, batch, response).
pub type Answers = Vec<(String, usize, Value)>;

pub struct Warm {
    /// Per workload label, batch 1 then batch 8.
    pub latency: Vec<(String, usize, Stats)>,
    /// Each workload's first answer at batch 1 and 8, for the agreement check.
    pub answers: Answers,
    pub peak_rss_kb: u64,
}

/// One process: every workload at batch 1 and 8, `iterations` timed calls each (stopping
/// early after `max_secs`, but never below a floor of samples), then the process's peak RSS.
pub async fn warm(
    config: &FunctionConfig,
    workloads: &[Workload],
    iterations: usize,
    max_secs: f64,
) -> Result<Warm> {
    let function = Function::start(config.clone()).await?;
    let mut latency = Vec::new();
    let mut answers = Vec::new();
    for w in workloads {
        for (batch, request) in [(1, &w.batch1), (8, &w.batch8)] {
            for i in 0..WARM_UP {
                let outcome = function.invoke(request.clone(), TIMEOUT).await;
                let answer = response(&function, outcome)?;
                if i == 0 {
                    answers.push((w.label.clone(), batch, answer));
                }
            }
            let mut samples = Vec::with_capacity(iterations);
            let started = Instant::now();
            while samples.len() < iterations
                && (samples.len() < MIN_SAMPLES || started.elapsed().as_secs_f64() < max_secs)
            {
                let t = Instant::now();
                let outcome = function.invoke(request.clone(), TIMEOUT).await;
                let elapsed = t.elapsed().as_secs_f64() * 1000.0;
                response(&function, outcome)?;
                samples.push(elapsed);
            }
            latency.push((w.label.clone(), batch, Stats::of(&samples)));
        }
    }
    let peak_rss_kb = function
        .peak_rss_kib()
        .await
        .context("cannot read the function's peak RSS (VmHWM in /proc/<pid>/status)")?;
    function.kill().await;
    Ok(Warm {
        latency,
        answers,
        peak_rss_kb,
    })
}

fn response(
    function: &Function,
    outcome: Result<Outcome, runtime_emulator::EmulatorError>,
) -> Result<Value> {
    match outcome {
        Ok(Outcome::Response(body)) => {
            let value: Value = serde_json::from_slice(&body).context("the answer is not JSON")?;
            // API errors come back as a response with a status; a benchmark of errors is void.
            if value.get("error").is_some() {
                bail!(
                    "the function answered with an error: {value}\nits log:\n{}",
                    function.logs().join("\n")
                );
            }
            Ok(value)
        }
        Ok(other) => bail!(
            "invocation failed: {}\nits log:\n{}",
            other.json(),
            function.logs().join("\n")
        ),
        Err(e) => bail!("{e}\nits log:\n{}", function.logs().join("\n")),
    }
}

/// The `*_ms` fields of the init log lines: the Rust function's `model loaded` line
/// (verify, decode, optimize, tokenizer) and the Python handler's `bench_init` line
/// (import, session).
fn init_phases(logs: &[String]) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for line in logs {
        let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let init = obj.get("message").and_then(Value::as_str) == Some("model loaded")
            || obj.get("bench_init") == Some(&Value::Bool(true));
        if !init {
            continue;
        }
        for (k, v) in &obj {
            if let (Some(name), Some(ms)) = (k.strip_suffix("_ms"), v.as_f64()) {
                out.push((name.to_string(), ms));
            }
        }
    }
    out
}

/// The `kernels` field of the Rust function's `model loaded` line, and of each `plan built`
/// line (bucket plans, built on first use) with its sequence length.
fn plan_kernels(logs: &[String]) -> Option<String> {
    let mut loaded = None;
    let mut built = Vec::new();
    for obj in logs
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
    {
        let kernels = obj.get("kernels").and_then(Value::as_str);
        match (obj.get("message").and_then(Value::as_str), kernels) {
            (Some("model loaded"), Some(k)) if loaded.is_none() => loaded = Some(k.to_string()),
            (Some("plan built"), Some(k)) => {
                let length = obj.get("length").and_then(Value::as_u64).unwrap_or(0);
                built.push(format!("length {length}: {k}"));
            }
            _ => {}
        }
    }
    if built.is_empty() {
        loaded
    } else {
        Some(built.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_from_both_sides_logs() {
        let logs = vec![
            r#"{"level":"INFO","message":"model loaded","model":"m","verify_ms":1.5,"decode_ms":2.0}"#.to_string(),
            r#"{"bench_init": true, "import_ms": 120.0, "session_ms": 40.0}"#.to_string(),
            r#"{"message":"ready","init_ms":9.0}"#.to_string(),
            "not json".to_string(),
        ];
        let mut got = init_phases(&logs);
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let names: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["decode", "import", "session", "verify"]);
    }
}
