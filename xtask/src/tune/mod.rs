//! `cargo xtask tune`: which memory size to deploy with, measured here before deploying.
//! The model's request runs through the real `bootstrap` at each memory size under what
//! Lambda gives that size (the emulator's cgroup: CPU share and memory limit): cold starts
//! in fresh processes, warm p50/p99, Max Memory Used, out-of-memory kills, the threads the
//! function chose; each size is priced with Lambda's prices (`price.rs`). Prints a table and
//! a recommendation, writes `target/tune/tune.json` (and `--json` prints it) and a plot of
//! latency and cost against memory (`plot.rs`).

mod plot;
mod price;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use runtime_emulator::{Function, FunctionConfig, Limits, Outcome};
use serde::Serialize;
use serde_json::Value;

use crate::bootstrap::Profile;
use crate::latency::Stats;
use crate::local::{self, FunctionArgs};

pub use price::Arch;
use price::Prices;

/// The recommendation's "knee": the smallest size within this fraction of the fastest p99.
const KNEE_WITHIN: f64 = 0.10;
/// Untimed warm calls before measuring (the first may load the model).
const WARM_UP: usize = 3;

#[derive(Args, Debug)]
pub struct TuneArgs {
    /// The model to ask (default: the manifest's default model).
    #[arg(long)]
    pub model: Option<String>,
    /// The request: JSON text, or @FILE (default: the model's `sample_request`).
    #[arg(long)]
    pub data: Option<String>,
    /// Memory sizes to measure, in MB (Lambda allows 128 to 10,240).
    #[arg(long, value_delimiter = ',', default_values_t = [512, 1024, 1769, 3008],
          value_parser = clap::value_parser!(u32).range(128..=10_240))]
    pub memory: Vec<u32>,
    /// The warm p99 the recommendation must meet, in ms.
    #[arg(long, value_name = "MS")]
    pub p99_ms: Option<f64>,
    /// Cold starts per size (fresh processes).
    #[arg(long, default_value_t = 5)]
    pub cold: usize,
    /// Warm invocations per size.
    #[arg(long, default_value_t = 50)]
    pub warm: usize,
    /// The architecture whose prices apply (durations are measured on this machine).
    #[arg(long, value_enum, default_value = "x86_64")]
    pub arch: Arch,
    /// USD per GB-second, instead of Lambda's published price for `--arch`.
    #[arg(long, value_name = "USD")]
    pub gb_second_price: Option<f64>,
    /// USD per million requests, instead of Lambda's published $0.20.
    #[arg(long, value_name = "USD")]
    pub request_price: Option<f64>,
    /// Print the results as JSON (for scripts) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Where to write the plot (SVG).
    #[arg(long, value_name = "PATH")]
    pub plot: Option<PathBuf>,
    /// Per-invocation timeout in seconds (Lambda's default is 3; ours deploys with 30).
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    #[command(flatten)]
    pub function: FunctionArgs,
}

/// One memory size, measured.
#[derive(Debug, Clone, Serialize)]
pub struct SizeResult {
    pub memory_mb: u32,
    pub vcpus: f64,
    /// The intra-op threads the function chose (its `ready` log line).
    pub threads: Option<u64>,
    /// Fresh process → first response.
    pub cold: Option<Stats>,
    pub warm: Option<Stats>,
    /// The cgroup's peak (Lambda's "Max Memory Used"), MiB.
    pub max_memory_used_mib: Option<f64>,
    /// The process's peak resident memory (VmHWM: with the binary's mapped pages, which the
    /// cgroup charged to whoever read them first), MiB.
    pub peak_rss_mib: Option<f64>,
    /// USD per million warm invocations (duration billed per ms, plus the request price).
    pub usd_per_million: Option<f64>,
    /// How an invocation failed at this size (`Runtime.OutOfMemory`, `Sandbox.Timedout`…).
    pub failed: Option<String>,
    /// The warm durations, ms (each is billed rounded up on its own).
    #[serde(skip)]
    pub warm_samples: Vec<f64>,
}

impl SizeResult {
    fn usable(&self) -> bool {
        self.failed.is_none() && self.warm.is_some()
    }
    fn p99(&self) -> f64 {
        self.warm.as_ref().map_or(f64::INFINITY, |w| w.p99_ms)
    }
    fn cost(&self) -> f64 {
        self.usd_per_million.unwrap_or(f64::INFINITY)
    }
}

/// Which size to choose, and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Recommendation {
    /// The cheapest size meeting `--p99-ms` (the cheapest of all without a target).
    pub cheapest: Option<u32>,
    /// The size with the lowest warm p99.
    pub fastest: Option<u32>,
    /// The smallest size within 10 % of the fastest p99: past it, memory buys little.
    pub knee: Option<u32>,
    pub p99_target_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub model: String,
    pub request_bytes: usize,
    pub prices: Prices,
    pub prices_as_of: &'static str,
    pub sizes: Vec<SizeResult>,
    pub recommendation: Recommendation,
}

pub fn run(args: &TuneArgs) -> Result<()> {
    let (model, request) = request(args)?;
    let prepared = local::prepare(&args.function, Profile::Release)?;
    let config = &prepared.config;
    let timeout = Duration::from_secs(args.timeout);
    let prices = Prices::new(args.arch, args.gb_second_price, args.request_price);
    let mut sizes = Vec::new();
    let rt = local::runtime()?;
    let mut memory = args.memory.clone();
    memory.sort_unstable();
    memory.dedup();
    for &mb in &memory {
        eprintln!(
            "{mb} MB: {} cold starts, {} warm invocations",
            args.cold, args.warm
        );
        let config = config.clone().memory_mb(mb);
        let result = rt.block_on(measure(config, &request, args.cold, args.warm, timeout))?;
        let result = priced(result, &prices);
        sizes.push(result);
    }
    let recommendation = recommend(&sizes, args.p99_ms);
    let report = Report {
        model,
        request_bytes: request.len(),
        prices,
        prices_as_of: price::PRICES_AS_OF,
        sizes,
        recommendation,
    };
    let json_path = report_path();
    let out = json_path.parent().expect("tune.json has a directory");
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let json = serde_json::to_string_pretty(&report)?;
    crate::files::write_atomic(&json_path, json.as_bytes())?;
    let plot_path = args.plot.clone().unwrap_or_else(|| out.join("tune.svg"));
    plot::write(&report, &plot_path)?;
    if args.json {
        println!("{json}");
    } else {
        print!("{}", table(&report));
        println!(
            "\nwrote {} and {}",
            json_path.display(),
            plot_path.display()
        );
    }
    Ok(())
}

/// The model's name and the request bytes to send.
fn request(args: &TuneArgs) -> Result<(String, Vec<u8>)> {
    let text = match &args.data {
        Some(data) => local::data_text(data)?,
        None => {
            let Some(example) = crate::example::request(args.model.as_deref()) else {
                bail!(
                    "{} has no sample_request in the manifest: pass the request with --data",
                    args.model.as_deref().unwrap_or("the default model")
                );
            };
            example.request
        }
    };
    let request = local::request(&text, args.model.as_deref())?;
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| crate::example::request(None).map(|e| e.model))
        .unwrap_or_else(|| "default".into());
    Ok((model, serde_json::to_vec(&request)?))
}

/// What one invocation came to.
enum Call {
    Answered { ms: f64 },
    Failed(String),
}

async fn call(f: &Function, request: &[u8], timeout: Duration) -> Result<Call> {
    let started = Instant::now();
    let outcome = f.invoke(request.to_vec(), timeout).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(Outcome::Response(body)) => {
            // A function answering with an error status would be timed answering nothing.
            let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if let Some(status) = answer.get("status").and_then(Value::as_u64) {
                if status != 200 {
                    bail!("the function refused the request ({status}): {answer}");
                }
            }
            Ok(Call::Answered { ms })
        }
        Ok(Outcome::Error { error_type, body }) => {
            Ok(Call::Failed(error_type.unwrap_or_else(|| {
                String::from_utf8_lossy(&body).into_owned()
            })))
        }
        Err(e) => Err(e).context("the function did not run"),
    }
}

/// Cold starts, then warm calls in one process, at `config`'s memory size.
async fn measure(
    config: FunctionConfig,
    request: &[u8],
    cold_runs: usize,
    warm_runs: usize,
    timeout: Duration,
) -> Result<SizeResult> {
    let mb = config.memory_mb;
    let mut result = SizeResult {
        memory_mb: mb,
        vcpus: Limits::lambda(mb).vcpus(),
        threads: None,
        cold: None,
        warm: None,
        max_memory_used_mib: None,
        peak_rss_mib: None,
        usd_per_million: None,
        failed: None,
        warm_samples: Vec::new(),
    };
    let mut cold = Vec::new();
    for _ in 0..cold_runs {
        let started = Instant::now();
        let f = Function::start(config.clone()).await?;
        if !f.limited().await {
            bail!("tune needs Lambda's limits (see the warning above): without them every size measures the same");
        }
        let call = call(&f, request, timeout).await?;
        result.threads = result.threads.or_else(|| threads(&f));
        f.kill().await;
        match call {
            Call::Answered { .. } => cold.push(started.elapsed().as_secs_f64() * 1000.0),
            Call::Failed(why) => {
                result.failed = Some(why);
                return Ok(result);
            }
        }
    }
    if !cold.is_empty() {
        result.cold = Some(Stats::of(&cold));
    }
    // The process whose Max Memory Used is read pays for its binary's pages, as a fresh
    // sandbox does: the cold starts above left them in the page cache, charged elsewhere.
    let f = Function::start(FunctionConfig {
        fresh_page_cache: true,
        ..config
    })
    .await?;
    let mut warm = Vec::with_capacity(warm_runs);
    for i in 0..WARM_UP + warm_runs {
        match call(&f, request, timeout).await? {
            Call::Answered { ms } if i >= WARM_UP => warm.push(ms),
            Call::Answered { .. } => {}
            Call::Failed(why) => {
                result.failed = Some(why);
                break;
            }
        }
    }
    result.threads = result.threads.or_else(|| threads(&f));
    result.max_memory_used_mib = f
        .max_memory_used()
        .await
        .map(|b| b as f64 / (1024.0 * 1024.0));
    result.peak_rss_mib = f.peak_rss_kib().await.map(|k| k as f64 / 1024.0);
    f.kill().await;
    if !warm.is_empty() {
        result.warm = Some(Stats::of(&warm));
    }
    result.warm_samples = warm;
    Ok(result)
}

/// The thread count from the function's `ready` line.
fn threads(f: &Function) -> Option<u64> {
    f.logs()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == "ready")
        .and_then(|v| v["threads"].as_u64())
}

fn priced(mut r: SizeResult, prices: &Prices) -> SizeResult {
    if r.usable() {
        // Billed per invocation: the warm samples' own durations, not their median.
        r.usd_per_million = Some(prices.per_million(r.memory_mb, &r.warm_samples));
    }
    r
}

fn recommend(sizes: &[SizeResult], p99_target_ms: Option<f64>) -> Recommendation {
    let usable: Vec<&SizeResult> = sizes.iter().filter(|s| s.usable()).collect();
    let cheapest = usable
        .iter()
        .filter(|s| p99_target_ms.is_none_or(|t| s.p99() <= t))
        .min_by(|a, b| {
            a.cost()
                .total_cmp(&b.cost())
                .then(a.memory_mb.cmp(&b.memory_mb))
        })
        .map(|s| s.memory_mb);
    let fastest = usable.iter().min_by(|a, b| {
        a.p99()
            .total_cmp(&b.p99())
            .then(a.memory_mb.cmp(&b.memory_mb))
    });
    let knee = fastest.and_then(|best| {
        usable
            .iter()
            .filter(|s| s.p99() <= best.p99() * (1.0 + KNEE_WITHIN))
            .map(|s| s.memory_mb)
            .min()
    });
    Recommendation {
        cheapest,
        fastest: fastest.map(|s| s.memory_mb),
        knee,
        p99_target_ms,
    }
}

/// Where `tune` writes its report.
fn report_path() -> PathBuf {
    crate::workspace::target_dir()
        .join("tune")
        .join("tune.json")
}

/// The memory size the last `tune` recommended, for `deploy --tuned-memory`.
pub fn recommended_memory() -> Result<i32> {
    let path = report_path();
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {}: run `cargo xtask tune` first",
            path.display()
        )
    })?;
    let report: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let r = &report["recommendation"];
    let mb = r["cheapest"]
        .as_i64()
        .or_else(|| r["knee"].as_i64())
        .with_context(|| {
            format!(
                "{} recommends no size (none met its p99 target): run `cargo xtask tune` with larger sizes or pass --memory",
                path.display()
            )
        })?;
    Ok(i32::try_from(mb)?)
}

fn table(report: &Report) -> String {
    let mut out = format!(
        "\n{} ({} bytes a request); prices: {}, ${}/GB-s, ${}/1M requests ({})\n\n",
        report.model,
        report.request_bytes,
        report.prices.arch.name(),
        report.prices.gb_second,
        report.prices.per_million_requests,
        report.prices_as_of
    );
    out.push_str("memory MB  vCPU  threads  cold p50 ms  warm p50 ms  warm p99 ms  max memory MiB  peak RSS MiB  $ per 1M\n");
    let num =
        |v: Option<f64>, prec: usize| v.map_or_else(|| "–".to_string(), |v| format!("{v:.prec$}"));
    for s in &report.sizes {
        let line = format!(
            "{:>9}  {:>4.2}  {:>7}  {:>11}  {:>11}  {:>11}  {:>14}  {:>12}  {:>8}",
            s.memory_mb,
            s.vcpus,
            s.threads.map_or("–".into(), |t| t.to_string()),
            num(s.cold.as_ref().map(|c| c.p50_ms), 1),
            num(s.warm.as_ref().map(|w| w.p50_ms), 2),
            num(s.warm.as_ref().map(|w| w.p99_ms), 2),
            num(s.max_memory_used_mib, 0),
            num(s.peak_rss_mib, 0),
            num(s.usd_per_million, 2),
        );
        out.push_str(&line);
        if let Some(why) = &s.failed {
            out.push_str(&format!("  {why}"));
        }
        out.push('\n');
    }
    let r = &report.recommendation;
    let mb = |m: Option<u32>| m.map_or("none".to_string(), |m| format!("{m} MB"));
    out.push('\n');
    match r.p99_target_ms {
        Some(t) => out.push_str(&format!(
            "cheapest with warm p99 ≤ {t} ms: {}\n",
            mb(r.cheapest)
        )),
        None => out.push_str(&format!("cheapest: {}\n", mb(r.cheapest))),
    }
    out.push_str(&format!("fastest (warm p99): {}\n", mb(r.fastest)));
    out.push_str(&format!(
        "knee (smallest within 10% of the fastest p99): {}\n",
        mb(r.knee)
    ));
    if let Some(m) = r.cheapest.or(r.knee) {
        out.push_str(&format!(
            "deploy with it: cargo xtask deploy --memory {m} …\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(mb: u32, p99: f64, cost: f64) -> SizeResult {
        let warm = Stats::of(&[p99]);
        SizeResult {
            memory_mb: mb,
            vcpus: Limits::lambda(mb).vcpus(),
            threads: Some(1),
            cold: None,
            warm: Some(warm),
            max_memory_used_mib: None,
            peak_rss_mib: None,
            usd_per_million: Some(cost),
            failed: None,
            warm_samples: vec![p99],
        }
    }

    #[test]
    fn the_recommendation_weighs_the_target_cost_and_the_curve() {
        let mut oom = size(128, 1.0, 0.01);
        oom.failed = Some("Runtime.OutOfMemory".into());
        let sizes = vec![
            oom,
            size(512, 80.0, 2.0),
            size(1024, 40.0, 2.1),
            size(1769, 21.0, 2.3),
            size(3008, 20.0, 3.9),
        ];
        let r = recommend(&sizes, Some(50.0));
        assert_eq!(
            r.cheapest,
            Some(1024),
            "the cheapest meeting 50 ms, not the OOM"
        );
        assert_eq!(r.fastest, Some(3008));
        assert_eq!(r.knee, Some(1769));
        assert_eq!(recommend(&sizes, None).cheapest, Some(512));
        assert_eq!(recommend(&sizes, Some(5.0)).cheapest, None);
        let text = table(&Report {
            model: "m".into(),
            request_bytes: 10,
            prices: Prices::new(Arch::X86_64, None, None),
            prices_as_of: price::PRICES_AS_OF,
            sizes,
            recommendation: r,
        });
        assert!(text.contains("Runtime.OutOfMemory"), "{text}");
        assert!(text.contains("cargo xtask deploy --memory 1024"), "{text}");
    }
}
