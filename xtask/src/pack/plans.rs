//! Which execution plans a packed model runs on: what its typing requires, and with
//! `plans = "auto"` the fastest candidate, each proved to answer as the reference does.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use inference_core::prepare::{self};
use model_lock::{ModelEntry, Plans};
use serde_json::Value;

use super::manifest::{ModelSpec, PlanChoice};
use super::Packed;

/// The plans a model must be checked with before any choice: what its typing allows.
pub(super) fn required_plans(typing: &prepare::Typing) -> Plans {
    match typing {
        prepare::Typing::Symbolic => Plans::Symbolic,
        prepare::Typing::BatchOne { .. } => Plans::Rows,
        prepare::Typing::Concrete { rows, .. } => Plans::PerShape {
            rows: *rows,
            from: model_lock::ShapeSource::Onnx,
            declared: Vec::new(),
            prebuild: false,
        },
    }
}

/// Warm rounds each candidate plan is timed over when `plans = "auto"` decides.
const PLAN_RUNS: usize = 5;

/// The plans the packed model runs on (`plans` in the manifest): every candidate that fits
/// is proved to answer as the symbolic plan does; `"auto"` times them and keeps the
/// fastest when clearly faster ([`prepare::fastest`]).
pub(super) fn choose_plans(
    packed: Packed,
    spec: &ModelSpec,
    samples: &[Value],
    typing: &prepare::Typing,
    declared: &[BTreeMap<String, Vec<u64>>],
) -> Result<Packed> {
    let name = &packed.entry.name;
    let lengths = spec
        .buckets
        .clone()
        .or_else(|| {
            let pipeline = packed.entry.pipeline.as_ref()?;
            Some(prepare::default_buckets(pipeline.max_length as u64))
        })
        .unwrap_or_default();
    let fitting = prepare::candidates(
        &packed.entry,
        &lengths,
        typing,
        declared,
        spec.prebuild_shapes,
    );
    let reference = fitting[0].clone();
    let pick = |wanted: fn(&Plans) -> bool, what: &str| -> Result<Vec<Plans>> {
        match fitting.iter().find(|p| wanted(p)) {
            Some(p) if *p == reference => Ok(vec![reference.clone()]),
            Some(p) => Ok(vec![reference.clone(), p.clone()]),
            None => bail!(
                "{name}: plans = {what:?} does not fit the model ({}): {}",
                typing.describe(),
                match what {
                    "symbolic" => "tract cannot type it with its symbolic dims",
                    "rows" =>
                        "it needs one symbolic dim (the batch) first in every input and output",
                    "per-shape" => "it needs a symbolic dim other than the batch, and no tokenizer",
                    _ => "it needs a text model whose inputs are [batch, sequence]",
                }
            ),
        }
    };
    let wanted = match spec.plans {
        PlanChoice::Symbolic => pick(Plans::is_symbolic, "symbolic")?,
        // Per-shape plans cost a build on the first request of each new shape: chosen by
        // timing only where the manifest declared the shapes it expects.
        PlanChoice::Auto => fitting
            .iter()
            .filter(|p| {
                !matches!(p, Plans::PerShape { .. }) || **p == reference || !declared.is_empty()
            })
            .cloned()
            .collect(),
        PlanChoice::Rows => pick(|p| *p == Plans::Rows, "rows")?,
        PlanChoice::Buckets => pick(|p| matches!(p, Plans::Buckets { .. }), "buckets")?,
        PlanChoice::PerShape => pick(|p| matches!(p, Plans::PerShape { .. }), "per-shape")?,
    };
    if wanted.len() < 2 {
        return Ok(Packed {
            entry: ModelEntry {
                plans: wanted[0].clone(),
                ..packed.entry
            },
            ..packed
        });
    }
    let requests = prepare::timing_requests(&packed.entry, samples);
    let runs = if spec.plans == PlanChoice::Auto {
        PLAN_RUNS
    } else {
        1
    };
    let tokenizer = packed.tokenizer.as_deref();
    let timings = prepare::time_plans(
        &packed.entry,
        &packed.bytes,
        tokenizer,
        &requests,
        &wanted,
        runs,
    )?;
    let plans = match spec.plans {
        PlanChoice::Auto => prepare::fastest(&timings),
        _ => wanted[1].clone(),
    };
    let measured: Vec<String> = timings
        .iter()
        .map(|t| {
            let ms: Vec<String> = t
                .medians
                .iter()
                .map(|m| format!("{:.2}", m.as_secs_f64() * 1000.0))
                .collect();
            format!(
                "{} {} ms (×{:.2})",
                t.plans,
                ms.join("/"),
                t.relative_to(&timings[0])
            )
        })
        .collect();
    eprintln!(
        "{name}: {} warm requests answered alike by every plan, median times {}: packed with plans {plans}",
        requests.len(),
        measured.join("; ")
    );
    Ok(Packed {
        entry: ModelEntry {
            plans,
            ..packed.entry
        },
        ..packed
    })
}
