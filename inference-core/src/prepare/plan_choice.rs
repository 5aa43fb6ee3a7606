//! The pack-time choice of a model's plans (`plans` in the lock; see `crate::plans`): each
//! candidate is loaded exactly as the function loads it, must answer every timing request
//! as the symbolic plan does, and is timed warm; the caller keeps the fastest when it is
//! clearly faster.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use model_lock::{
    DType, Dim, ModelEntry, Plans, ShapeSource, TextPipeline, TextTask, Truncation, MAX_BUCKETS,
};
use serde_json::{json, Value};

use crate::registry::{PackedModel, Registry};
use crate::request::tensors::nesting_depth;
use crate::settings::{LoadMode, Settings};

use super::{within_drift, Drift, PrepareError, Typing, PLANS_MAX_DRIFT};

/// The shortest bucket: below it a plan per length buys nothing.
const SHORTEST_BUCKET: u64 = 16;
/// Rows in the batched timing request: what a batch-1 plan run row by row must also serve.
const TIMING_BATCH: usize = 8;

/// The bucket lengths for a text model reading at most `max_length` tokens: powers of two
/// from 16, then `max_length` itself; the longest [`MAX_BUCKETS`] of them.
pub fn default_buckets(max_length: u64) -> Vec<u64> {
    let mut lengths: Vec<u64> = std::iter::successors(Some(SHORTEST_BUCKET), |l| Some(l * 2))
        .take_while(|l| *l < max_length)
        .collect();
    lengths.push(max_length);
    let extra = lengths.len().saturating_sub(MAX_BUCKETS);
    lengths.drain(..extra);
    lengths
}

/// The plans that fit `entry`'s signature as tract can type it, the reference first (the
/// one every other must answer as): typed symbolically — symbolic; rows when one symbolic
/// dim leads every input and output; buckets (`lengths`) for a text model with `[batch,
/// sequence]` inputs; per-shape plans from the typed graph when other dims are symbolic.
/// Typed only with the batch at 1 — rows, and per-shape rows. Typed only concretely —
/// per-shape plans from ONNX alone. Per-shape plans carry the `declared` shapes.
pub fn candidates(
    entry: &ModelEntry,
    lengths: &[u64],
    typing: &Typing,
    declared: &[BTreeMap<String, Vec<u64>>],
    prebuild: bool,
) -> Vec<Plans> {
    let batch = crate::plans::batch_dim(entry);
    let other_symbols = entry.pipeline.is_none()
        && entry.inputs.iter().any(|s| {
            s.shape.iter().enumerate().any(
                |(axis, d)| matches!(d, Dim::Symbol(n) if axis > 0 || Some(n) != batch.as_ref()),
            )
        });
    let per_shape = |rows: bool, from: ShapeSource| Plans::PerShape {
        rows,
        from,
        declared: declared.to_vec(),
        prebuild,
    };
    match typing {
        Typing::Concrete { rows, .. } => vec![per_shape(*rows, ShapeSource::Onnx)],
        Typing::BatchOne { .. } => {
            let mut plans = vec![Plans::Rows];
            if other_symbols {
                plans.push(per_shape(true, ShapeSource::Typed));
            }
            plans
        }
        Typing::Symbolic => {
            let mut plans = vec![Plans::Symbolic];
            if batch.is_some() {
                plans.push(Plans::Rows);
            }
            if crate::plans::sequence_dim(entry).is_some() && !lengths.is_empty() {
                plans.push(Plans::Buckets {
                    lengths: lengths.to_vec(),
                });
            }
            if other_symbols {
                plans.push(per_shape(batch.is_some(), ShapeSource::Typed));
            }
            plans
        }
    }
}

/// One candidate, measured.
#[derive(Debug, Clone)]
pub struct PlanTiming {
    pub plans: Plans,
    /// Each timing request's median warm answer time, in order.
    pub medians: Vec<Duration>,
    /// How far its answers are from the symbolic plan's (within [`PLANS_MAX_DRIFT`]).
    pub drift: Drift,
}

/// The requests plans are timed on: the samples and, for a model of float inputs, each
/// with its values replaced by noise (a generated sample is all zeros, which leaves most of
/// the arithmetic unproved); each of those again as a batch of [`TIMING_BATCH`] rows; and
/// for a text model a batch of `max_length`-token texts.
pub fn timing_requests(entry: &ModelEntry, samples: &[Value]) -> Vec<Value> {
    let rank = entry.inputs.first().map_or(0, |s| s.shape.len());
    let batched = crate::plans::batch_dim(entry).is_some();
    let floats = entry
        .inputs
        .iter()
        .all(|s| matches!(s.dtype, DType::F16 | DType::F32 | DType::F64));
    let mut requests = samples.to_vec();
    if floats {
        requests.extend(samples.iter().filter_map(with_noise));
    }
    if batched {
        let batches: Vec<Value> = requests.iter().filter_map(|s| as_batch(s, rank)).collect();
        requests.extend(batches);
    }
    if let Some(pipeline) = &entry.pipeline {
        requests.push(long_text_request(pipeline));
    }
    requests
}

/// A batch of the longest texts the pipeline reads, in its task's shape: one word a token
/// for the usual tokenizers, cut at max_length when truncation is on (half as many
/// otherwise, so the request is not refused); question answering gets a context of several
/// windows.
fn long_text_request(pipeline: &TextPipeline) -> Value {
    let words = |n: usize| vec!["the"; n.max(1)].join(" ");
    let rows = TIMING_BATCH.min(pipeline.max_batch);
    let full = match pipeline.truncation() {
        Truncation::Off => pipeline.max_length / 2,
        _ => pipeline.max_length,
    };
    match pipeline.task {
        TextTask::Embedding | TextTask::Classification => {
            json!({ "text": vec![words(full.saturating_sub(2)); rows] })
        }
        TextTask::Rerank => json!({
            "query": words(4),
            "documents": vec![words(full.saturating_sub(8)); rows]
        }),
        TextTask::QuestionAnswering => {
            // Windows advance by max_length - stride tokens (less the question).
            let advance = pipeline.max_length - pipeline.stride();
            json!({
                "question": words(4),
                "context": words(advance * rows.saturating_sub(1) / 2 + advance / 2)
            })
        }
    }
}

/// `sample`'s tensor values replaced by deterministic noise in [-1, 1], same shapes.
fn with_noise(sample: &Value) -> Option<Value> {
    fn fill(value: &mut Value, next: &mut impl FnMut() -> f64) {
        match value {
            Value::Array(items) => items.iter_mut().for_each(|v| fill(v, next)),
            Value::Number(_) => *value = json!(next()),
            _ => {}
        }
    }
    // A fixed-seed LCG: the same requests at every pack.
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 40) as f64 / (1u64 << 24) as f64) * 2.0 - 1.0
    };
    let mut noisy = sample.clone();
    match (noisy.get_mut("features"), sample.get("inputs")) {
        (Some(features), _) => fill(features, &mut next),
        (None, Some(_)) => noisy["inputs"]
            .as_object_mut()?
            .values_mut()
            .for_each(|v| fill(v, &mut next)),
        (None, None) => return None,
    }
    Some(noisy)
}

/// `sample` with its rows repeated to [`TIMING_BATCH`], if it has rows to repeat.
fn as_batch(sample: &Value, rank: usize) -> Option<Value> {
    let cycle = |rows: &Vec<Value>| -> Value {
        Value::Array(rows.iter().cycle().take(TIMING_BATCH).cloned().collect())
    };
    let mut batch = sample.clone();
    if let Some(texts) = sample.get("text").and_then(Value::as_array) {
        batch["text"] = cycle(texts);
    } else if super::check::is_text_request(sample) {
        // Rerank and question answering: the long-text request is their batch.
        return None;
    } else if let Some(features) = sample.get("features") {
        let rows = match features {
            Value::Array(rows) if nesting_depth(features) == rank => rows.clone(),
            row => vec![row.clone()],
        };
        batch["features"] = cycle(&rows);
    } else {
        let inputs = batch.get_mut("inputs")?.as_object_mut()?;
        for value in inputs.values_mut() {
            *value = cycle(value.as_array()?);
        }
    }
    Some(batch)
}

/// Loads `bytes` with each of `candidates` as its plans, checks that every request is
/// answered as the first candidate (the reference) answers it, and times `runs` warm
/// rounds of the requests.
pub fn time_plans(
    entry: &ModelEntry,
    bytes: &[u8],
    tokenizer: Option<&[u8]>,
    requests: &[Value],
    candidates: &[Plans],
    runs: usize,
) -> Result<Vec<PlanTiming>, PrepareError> {
    let mut reference: Option<Vec<Value>> = None;
    let mut timings = Vec::new();
    for plans in candidates {
        let model = PackedModel {
            entry: ModelEntry {
                plans: plans.clone(),
                ..entry.clone()
            },
            bytes: Some(bytes.to_vec().into()),
            tokenizer: tokenizer.map(|t| t.to_vec().into()),
        };
        let registry = Registry::new(vec![model], None, &Settings::embedded_only(LoadMode::Eager))
            .map_err(PrepareError::Load)?;
        let answer = |request: &Value| {
            let mut request = request.clone();
            request["model"] = json!(entry.name);
            registry.handle_value(request).map_err(PrepareError::Sample)
        };
        // The first round builds what is built on first use, and is the equality proof.
        let answers = requests.iter().map(answer).collect::<Result<Vec<_>, _>>()?;
        let drift = match &reference {
            None => {
                reference = Some(answers);
                Drift {
                    cosine: 1.0,
                    max_abs: 0.0,
                }
            }
            Some(want) => within_drift(want, &answers, PLANS_MAX_DRIFT).map_err(|drift| {
                PrepareError::PlansDiffer {
                    plans: plans.to_string(),
                    drift,
                }
            })?,
        };
        let mut per_request = vec![Vec::with_capacity(runs); requests.len()];
        for _ in 0..runs.max(1) {
            for (times, request) in per_request.iter_mut().zip(requests) {
                let started = Instant::now();
                answer(request)?;
                times.push(started.elapsed());
            }
        }
        let medians = per_request
            .iter_mut()
            .map(|times| {
                times.sort();
                times[times.len() / 2]
            })
            .collect();
        timings.push(PlanTiming {
            plans: plans.clone(),
            medians,
            drift,
        });
    }
    Ok(timings)
}

impl PlanTiming {
    /// The geometric mean over the timing requests of this plan's time over `base`'s: every
    /// request counts alike, so a plan that helps the biggest request and hurts the small
    /// ones is not picked on the big one's milliseconds alone.
    pub fn relative_to(&self, base: &PlanTiming) -> f64 {
        let ratios: Vec<f64> = self
            .medians
            .iter()
            .zip(&base.medians)
            .map(|(t, b)| t.as_secs_f64().max(1e-9) / b.as_secs_f64().max(1e-9))
            .collect();
        if ratios.is_empty() {
            return 1.0;
        }
        (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp()
    }
}

/// `plans = "auto"`: the fastest candidate relative to the first (the reference: the
/// symbolic plan where the graph types so) ([`PlanTiming::relative_to`]), kept only when
/// it is a tenth faster, so a re-pack does not flip on noise.
pub fn fastest(timings: &[PlanTiming]) -> Plans {
    let Some(base) = timings.first() else {
        return Plans::Symbolic;
    };
    timings
        .iter()
        .map(|t| (t.relative_to(base), t))
        .filter(|(ratio, _)| *ratio < 0.9)
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map_or(base.plans.clone(), |(_, t)| t.plans.clone())
}
