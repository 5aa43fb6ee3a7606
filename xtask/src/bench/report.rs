//! The benchmark's results: JSON for machines, a markdown table for BENCHMARKS.md, and the
//! issue's targets as measured ratios.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{bail, Result};
use inference_core::compare;
use serde::Serialize;

use super::measure::{Answers, Cold, NewShape, Warm};
use super::size::Deployment;
use super::workloads::{self, BenchModel, Kind};
use super::{pinned, BenchArgs, ORT_FP32, ORT_INT8, OURS, OURS_INT8_DYNAMIC};
use crate::latency::Stats;
use crate::python_env::PythonEnv;

const SIDES: [&str; 4] = [OURS, OURS_INT8_DYNAMIC, ORT_FP32, ORT_INT8];

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub rustc: String,
    pub python: String,
}

#[derive(Debug, Serialize)]
pub struct ColdRow {
    pub model: String,
    pub side: String,
    pub runs: usize,
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    /// Median of each init phase the process logged.
    pub phases_ms: BTreeMap<String, f64>,
    /// The matrix-product kernels of our plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernels: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct WarmRow {
    pub model: String,
    pub input: String,
    pub batch: usize,
    pub side: String,
    pub threads: usize,
    pub stats: Stats,
}

#[derive(Debug, Serialize)]
pub struct RssRow {
    pub model: String,
    pub side: String,
    pub threads: usize,
    pub peak_rss_mib: f64,
}

#[derive(Debug, Serialize)]
pub struct Agreement {
    pub model: String,
    pub input: String,
    pub batch: usize,
    pub side: String,
    pub against: String,
    /// "min cosine" (embeddings) or "max abs diff" (raw outputs).
    pub metric: String,
    pub value: f64,
}

#[derive(Debug, Serialize)]
pub struct Target {
    pub target: String,
    pub measured: String,
    pub met: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    /// The Lambda memory size both sides ran under (`--memory`); none: the whole machine.
    pub lambda_memory_mb: Option<u32>,
    pub cold_runs: usize,
    pub warm_iterations: usize,
    pub cold: Vec<ColdRow>,
    pub warm: Vec<WarmRow>,
    pub rss: Vec<RssRow>,
    pub agreement: Vec<Agreement>,
    pub size_ours: Option<Deployment>,
    pub size_python: Option<Deployment>,
    pub targets: Vec<Target>,
    /// First requests of shapes a warm process had not seen (the vision model as exported).
    pub new_shapes: Vec<NewShapeRow>,
}

/// One new shape's first request, on one side.
#[derive(Debug, Clone, Serialize)]
pub struct NewShapeRow {
    pub model: String,
    pub side: String,
    pub shape: String,
    pub first_ms: f64,
    /// The plan build the first request logged (ours: per-shape plans).
    pub build_ms: Option<f64>,
    /// The same request again, median of three.
    pub again_ms: f64,
}

fn median(v: &[f64]) -> f64 {
    Stats::of(v).p50_ms
}

fn machine(python: &PythonEnv) -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown".into());
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| (kb / 1024.0 / 1024.0 * 10.0).round() / 10.0)
        .unwrap_or(0.0);
    let output = |cmd: &mut std::process::Command| {
        cmd.output()
            .ok()
            .map(|o| {
                let text = if o.stdout.is_empty() {
                    o.stderr
                } else {
                    o.stdout
                };
                String::from_utf8_lossy(&text).trim().to_string()
            })
            .unwrap_or_default()
    };
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gib,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        rustc: output(std::process::Command::new("rustc").arg("-V")),
        python: output(std::process::Command::new(python.python()).arg("--version")),
    }
}

impl Report {
    pub fn new(args: &BenchArgs, python: &PythonEnv) -> Result<Report> {
        Ok(Report {
            machine: machine(python),
            lambda_memory_mb: args.memory,
            cold_runs: args.cold,
            warm_iterations: args.warm,
            cold: Vec::new(),
            warm: Vec::new(),
            rss: Vec::new(),
            agreement: Vec::new(),
            size_ours: None,
            size_python: None,
            targets: Vec::new(),
            new_shapes: Vec::new(),
        })
    }

    pub fn add_cold(&mut self, model: &str, side: &str, cold: &Cold) {
        let s = Stats::of(&cold.samples_ms);
        self.cold.push(ColdRow {
            model: model.into(),
            side: side.into(),
            runs: s.n,
            median_ms: s.p50_ms,
            min_ms: s.min_ms,
            max_ms: s.max_ms,
            phases_ms: cold
                .phases
                .iter()
                .map(|(k, v)| (k.clone(), median(v)))
                .collect(),
            kernels: cold.kernels.clone(),
        });
    }

    pub fn add_warm(&mut self, model: &str, side: &str, threads: usize, warm: &Warm) {
        for (input, batch, stats) in &warm.latency {
            self.warm.push(WarmRow {
                model: model.into(),
                input: input.clone(),
                batch: *batch,
                side: side.into(),
                threads,
                stats: stats.clone(),
            });
        }
        self.rss.push(RssRow {
            model: model.into(),
            side: side.into(),
            threads,
            peak_rss_mib: warm.peak_rss_kb as f64 / 1024.0,
        });
    }

    /// Every side's answers against onnxruntime fp32's: a benchmark of wrong answers is void,
    /// so ours must agree (embeddings cosine ≥ 0.99, raw outputs within 1e-3).
    pub fn add_agreement(&mut self, model: &BenchModel, answers: &[(&str, Answers)]) -> Result<()> {
        let Some((_, reference)) = answers.iter().find(|(s, _)| *s == ORT_FP32) else {
            return Ok(());
        };
        for (side, theirs) in answers.iter().filter(|(s, _)| *s != ORT_FP32) {
            for ((input, batch, want), (_, _, got)) in reference.iter().zip(theirs) {
                if model.kind == Kind::Text && *side == OURS {
                    let want_seq: u64 =
                        input.trim_start_matches("seq ").parse().unwrap_or_default();
                    let tokens = workloads::max_tokens(got);
                    if tokens != Some(want_seq) {
                        bail!("the {input:?} texts tokenize to {tokens:?} tokens, not {want_seq}: fix the bench inputs");
                    }
                }
                let (Some(w), Some(g)) = (
                    workloads::comparable(model.kind, want),
                    workloads::comparable(model.kind, got),
                ) else {
                    bail!("{} {input} batch {batch}: an answer without comparable outputs:\n{side}: {got}\n{ORT_FP32}: {want}", model.key);
                };
                if w.len() != g.len() || w.iter().zip(&g).any(|(a, b)| a.len() != b.len()) {
                    bail!(
                        "{} {input} batch {batch}: {side} and {ORT_FP32} answer in different shapes",
                        model.key
                    );
                }
                let (metric, value, ok) = if model.kind == Kind::Text {
                    let min = w
                        .iter()
                        .zip(&g)
                        .map(|(a, b)| compare::cosine(a, b))
                        .fold(f64::INFINITY, f64::min);
                    ("min cosine", min, min >= 0.99)
                } else {
                    let max = w
                        .iter()
                        .zip(&g)
                        .map(|(a, b)| compare::max_abs_diff(a, b))
                        .fold(0.0, f64::max);
                    ("max abs diff", max, max <= 1e-3)
                };
                if [OURS, OURS_INT8_DYNAMIC].contains(side) && !ok {
                    bail!(
                        "{} {input} batch {batch}: {side} disagrees with onnxruntime fp32 ({metric} {value})",
                        model.key
                    );
                }
                self.agreement.push(Agreement {
                    model: model.key.into(),
                    input: input.clone(),
                    batch: *batch,
                    side: side.to_string(),
                    against: ORT_FP32.into(),
                    metric: metric.into(),
                    value,
                });
            }
        }
        Ok(())
    }

    pub fn add_new_shapes(&mut self, model: &str, side: &str, shapes: &[NewShape]) {
        self.new_shapes.extend(shapes.iter().map(|s| NewShapeRow {
            model: model.into(),
            side: side.into(),
            shape: s.shape.clone(),
            first_ms: s.first_ms,
            build_ms: s.build_ms,
            again_ms: s.again_ms,
        }));
    }

    pub fn set_sizes(&mut self, ours: Deployment, python: Deployment) {
        self.size_ours = Some(ours);
        self.size_python = Some(python);
    }

    fn cold_of(&self, model: &str, side: &str) -> Option<&ColdRow> {
        self.cold
            .iter()
            .find(|c| c.model == model && c.side == side)
    }

    fn warm_of(
        &self,
        model: &str,
        input: &str,
        batch: usize,
        side: &str,
        threads: usize,
    ) -> Option<&Stats> {
        self.warm
            .iter()
            .find(|w| {
                w.model == model
                    && w.input == input
                    && w.batch == batch
                    && w.side == side
                    && w.threads == threads
            })
            .map(|w| &w.stats)
    }

    fn rss_of(&self, model: &str, side: &str, threads: usize) -> Option<f64> {
        self.rss
            .iter()
            .find(|r| r.model == model && r.side == side && r.threads == threads)
            .map(|r| r.peak_rss_mib)
    }

    /// The models measured, in run order.
    fn models(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for c in &self.cold {
            if !seen.contains(&c.model.as_str()) {
                seen.push(&c.model);
            }
        }
        seen
    }

    /// The targets, as measured in this run.
    pub fn evaluate_targets(&mut self, models: &[BenchModel]) {
        let mut targets = Vec::new();
        for bench_model in models {
            let model = bench_model.key;
            let cold_ratio = |ours: &ColdRow, ort: &ColdRow, want: f64, what: &str| {
                let ratio = ours.median_ms / ort.median_ms;
                Target {
                    target: format!(
                        "{model}: cold start{what} ≤ 1/{:.0} of Python + onnxruntime's",
                        1.0 / want
                    ),
                    measured: format!(
                        "{:.0} ms vs {:.0} ms = 1/{:.1}",
                        ours.median_ms,
                        ort.median_ms,
                        1.0 / ratio
                    ),
                    met: ratio <= want,
                }
            };
            if let (Some(want), Some(ours), Some(ort)) = (
                bench_model.pinned_cold_ratio,
                self.cold_of(model, &pinned(OURS)),
                self.cold_of(model, &pinned(ORT_FP32)),
            ) {
                targets.push(cold_ratio(ours, ort, want, " pinned to one core"));
            }
            if let (Some(ours), Some(ort)) =
                (self.cold_of(model, OURS), self.cold_of(model, ORT_FP32))
            {
                targets.push(cold_ratio(ours, ort, bench_model.cold_ratio, ""));
                if let Some(limit) = bench_model.cold_target_ms {
                    targets.push(Target {
                        target: format!("{model}: cold start < {limit} ms"),
                        measured: format!("{:.0} ms (median)", ours.median_ms),
                        met: ours.median_ms < limit,
                    });
                }
            }
            let mut inputs: Vec<(String, usize)> = Vec::new();
            for w in self
                .warm
                .iter()
                .filter(|w| w.model == model && w.threads == 1)
            {
                if !inputs.contains(&(w.input.clone(), w.batch)) {
                    inputs.push((w.input.clone(), w.batch));
                }
            }
            for (input, batch) in inputs {
                for side in [OURS, OURS_INT8_DYNAMIC] {
                    if let (Some(ours), Some(ort)) = (
                        self.warm_of(model, &input, batch, side, 1),
                        self.warm_of(model, &input, batch, ORT_FP32, 1),
                    ) {
                        targets.push(Target {
                            target: format!(
                                "{model} {input} batch {batch}: {side} warm p50 at 1 thread ≤ onnxruntime fp32's"
                            ),
                            measured: format!("{:.2} ms vs {:.2} ms", ours.p50_ms, ort.p50_ms),
                            met: ours.p50_ms <= ort.p50_ms,
                        });
                    }
                }
                if let (Some(ours), Some(ort)) = (
                    self.warm_of(model, &input, batch, OURS_INT8_DYNAMIC, 1),
                    self.warm_of(model, &input, batch, ORT_INT8, 1),
                ) {
                    targets.push(Target {
                        target: format!(
                            "{model} {input} batch {batch}: {OURS_INT8_DYNAMIC} warm p50 at 1 thread ≤ 1.2 × onnxruntime dynamic int8's"
                        ),
                        measured: format!(
                            "{:.2} ms vs {:.2} ms = {:.2}×",
                            ours.p50_ms,
                            ort.p50_ms,
                            ours.p50_ms / ort.p50_ms
                        ),
                        met: ours.p50_ms <= 1.2 * ort.p50_ms,
                    });
                }
            }
            for threads in [1, 2] {
                if let (Some(ours), Some(ort)) = (
                    self.rss_of(model, OURS, threads),
                    self.rss_of(model, ORT_FP32, threads),
                ) {
                    targets.push(Target {
                        target: format!(
                            "{model}: peak RSS below onnxruntime's ({threads} thread{})",
                            if threads == 1 { "" } else { "s" }
                        ),
                        measured: format!("{ours:.0} MiB vs {ort:.0} MiB"),
                        met: ours < ort,
                    });
                }
            }
        }
        self.targets = targets;
    }

    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(
            md,
            "Machine: {}, {} cores, {:.1} GiB, Linux {}; {}; {}.\n",
            m.cpu, m.cores, m.memory_gib, m.kernel, m.rustc, m.python
        );
        if let Some(mb) = self.lambda_memory_mb {
            let _ = writeln!(
                md,
                "Every side ran under what Lambda gives a {mb} MB function: {:.2} vCPU and {mb} MB of memory (`--memory {mb}`).\n",
                runtime_emulator::Limits::lambda(mb).vcpus()
            );
        }
        let _ = writeln!(
            md,
            "### Cold start: fresh process → first response (batch 1, one thread, {} runs)\n",
            self.cold_runs
        );
        md.push_str("| model | side | median ms | min | max | init phases (median ms) |\n|---|---|---:|---:|---:|---|\n");
        for c in &self.cold {
            let phases: Vec<String> = c
                .phases_ms
                .iter()
                .map(|(k, v)| format!("{k} {v:.1}"))
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} | {:.1} | {:.1} | {:.1} | {} |",
                c.model,
                c.side,
                c.median_ms,
                c.min_ms,
                c.max_ms,
                phases.join(", ")
            );
        }
        let plans: Vec<String> = self
            .cold
            .iter()
            .filter(|c| c.side == OURS || c.side == OURS_INT8_DYNAMIC)
            .filter_map(|c| {
                let kernels = c.kernels.as_deref().filter(|k| !k.is_empty())?;
                let variant = if c.side == OURS { "" } else { " int8-dynamic" };
                Some(format!("- {}{variant}: {kernels}", c.model))
            })
            .collect();
        if !plans.is_empty() {
            let _ = writeln!(
                md,
                "\nMatrix-product kernels in our plans (kernel × products):\n\n{}",
                plans.join("\n")
            );
        }
        let _ = writeln!(
            md,
            "\n### Warm latency, p50 / p99 ms (up to {} invocations each)\n",
            self.warm_iterations
        );
        md.push_str("| model | input | batch | threads | ours | ours int8-dynamic | onnxruntime fp32 | onnxruntime int8 |\n|---|---|---:|---:|---:|---:|---:|---:|\n");
        let mut rows: Vec<(String, String, usize, usize)> = Vec::new();
        for w in &self.warm {
            let key = (w.model.clone(), w.input.clone(), w.batch, w.threads);
            if !rows.contains(&key) {
                rows.push(key);
            }
        }
        rows.sort_by(|a, b| {
            (a.0.clone(), a.3, a.1.clone(), a.2).cmp(&(b.0.clone(), b.3, b.1.clone(), b.2))
        });
        for (model, input, batch, threads) in rows {
            let cells: Vec<String> = SIDES
                .iter()
                .map(|side| {
                    self.warm_of(&model, &input, batch, side, threads)
                        .map(|s| format!("{:.2} / {:.2}", s.p50_ms, s.p99_ms))
                        .unwrap_or_else(|| "–".into())
                })
                .collect();
            let _ = writeln!(
                md,
                "| {model} | {input} | {batch} | {threads} | {} |",
                cells.join(" | ")
            );
        }
        md.push_str("\n### Peak RSS, MiB (VmHWM after the warm runs)\n\n| model | threads | ours | ours int8-dynamic | onnxruntime fp32 | onnxruntime int8 |\n|---|---:|---:|---:|---:|---:|\n");
        for model in self.models() {
            for threads in [1, 2] {
                let cells: Vec<String> = SIDES
                    .iter()
                    .map(|side| {
                        self.rss_of(model, side, threads)
                            .map(|v| format!("{v:.0}"))
                            .unwrap_or_else(|| "–".into())
                    })
                    .collect();
                let _ = writeln!(md, "| {model} | {threads} | {} |", cells.join(" | "));
            }
        }
        if let (Some(ours), Some(py)) = (&self.size_ours, &self.size_python) {
            let mb = |b: u64| b as f64 / 1_000_000.0;
            let _ = write!(
                md,
                "\n### Deployment size, MB (the models above)\n\n| | zip | unzipped |\n|---|---:|---:|\n\
                 | ours: `bootstrap` with the models embedded | {:.1} | {:.1} |\n\
                 | Python: onnxruntime + numpy + tokenizers + handler + fp32 models | {:.1} | {:.1} |\n",
                mb(ours.zip_bytes),
                mb(ours.unzipped_bytes),
                mb(py.zip_bytes),
                mb(py.unzipped_bytes)
            );
        }
        if !self.agreement.is_empty() {
            md.push_str("\n### Answers against onnxruntime fp32 (first answer of each input)\n\n| model | input | batch | side | metric | value |\n|---|---|---:|---|---|---:|\n");
            for a in &self.agreement {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {:.6} |",
                    a.model, a.input, a.batch, a.side, a.metric, a.value
                );
            }
        }
        if !self.new_shapes.is_empty() {
            md.push_str("\n### A new request shape, in a warm process (one thread; ours: the detector as exported, a plan per shape)\n\n| model | side | shape | first request ms | of which plan build ms | again ms |\n|---|---|---|---:|---:|---:|\n");
            for r in &self.new_shapes {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.1} | {} | {:.1} |",
                    r.model,
                    r.side,
                    r.shape,
                    r.first_ms,
                    r.build_ms.map_or("–".into(), |b| format!("{b:.1}")),
                    r.again_ms
                );
            }
        }
        if !self.targets.is_empty() {
            md.push_str("\n### Targets\n\n| target | measured | met |\n|---|---|---|\n");
            for t in &self.targets {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} |",
                    t.target,
                    t.measured,
                    if t.met { "yes" } else { "**no**" }
                );
            }
        }
        md
    }
}
