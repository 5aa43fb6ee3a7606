//! Answering one decoded request: inputs checked against the signature, one run of the
//! plan, outputs (or a text pipeline's answer) encoded with the predicted labels.

use std::time::Instant;

use model_lock::{DType, ModelEntry, TensorSpec};
use serde_json::Value;
use tract_onnx::prelude::*;

use crate::error::{quote, RequestError};
use crate::lookup::check_indices;
use crate::plans::{NoPlan, Plans, Runner};
use crate::request::tensors::{json_to_tensor, nesting_depth, SymbolValues};
use crate::request::{InferenceRequest, RequestInputs, TextInputs};
use crate::response::tensors::tensor_to_json;
use crate::response::InferenceResponse;
use crate::tensor_data::slice_of;
use crate::text::TextModel;
use crate::work::{check_cost, check_limits, check_memory};

use super::Registry;

impl Registry {
    /// Runs one decoded request; a model loaded now must be loaded before `deadline`.
    pub(crate) fn infer(
        &self,
        req: &InferenceRequest,
        deadline: Option<Instant>,
    ) -> Result<InferenceResponse, RequestError> {
        let ix = self.resolve(req.model.as_deref())?;
        let entry = &self.slots[ix].model.entry;
        if let Some(wanted) = &req.return_outputs {
            if let Some(bad) = wanted
                .iter()
                .find(|w| !entry.outputs.iter().any(|o| &o.name == *w))
            {
                return Err(RequestError::bad(format!(
                    "field \"return\": model {:?} has no output {}; its outputs are {}",
                    entry.name,
                    quote(bad),
                    names(&entry.outputs)
                )));
            }
        }
        if let RequestInputs::Text(texts) = &req.inputs {
            return self.infer_text(ix, texts, req.top_k, deadline);
        }
        let inputs = build_inputs(entry, &req.inputs)?;
        if let Some(pipeline) = &entry.pipeline {
            pipeline_limits(&inputs, pipeline, |i| {
                input_field(&req.inputs, &entry.inputs[i].name)
            })?;
        }
        let field = |i: usize| input_field(&req.inputs, &entry.inputs[i].name);
        check_limits(entry, &inputs, field)?;
        // Every input carries the batch axis first (one row gained it in build_inputs).
        let rows = inputs
            .first()
            .and_then(|t| t.shape().first().copied())
            .unwrap_or(1);
        let model = self.loaded(ix, deadline)?;
        check_indices(&inputs, &model.index_limits, field)?;
        let returned = |o: usize| {
            req.return_outputs
                .as_ref()
                .is_none_or(|wanted| wanted.contains(&entry.outputs[o].name))
        };
        let internal = |e: String| RequestError::Internal(format!("model {:?}: {e}", entry.name));
        check_cost(entry, &inputs, self.memory_limit)?;
        let runner = self.runner(entry, &model.plans, &inputs)?;
        if let Some(limits) = runner.index_limits() {
            check_indices(&inputs, limits, field)?;
        }
        check_memory(
            runner.bytes(&inputs, returned),
            self.memory_limit,
            &entry.name,
        )?;
        let outputs = runner.run(inputs).map_err(|e| {
            // An unknown category the model refuses is the request's fault.
            match e
                .chain()
                .find_map(|c| c.downcast_ref::<crate::ml::UnknownCategory>())
            {
                Some(unknown) => RequestError::bad(unknown.to_string()),
                None => internal(format!("{e:#}")),
            }
        })?;

        let labels = predicted_labels(entry, &outputs);
        let mut encoded = Vec::with_capacity(outputs.len());
        for (spec, value) in entry.outputs.iter().zip(outputs.iter()) {
            if let Some(wanted) = &req.return_outputs {
                if !wanted.contains(&spec.name) {
                    continue;
                }
            }
            let mut json = tensor_to_json(value)
                .map_err(|e| RequestError::Internal(format!("output {:?}: {e}", spec.name)))?;
            if let Some(class) = entry
                .class_labels
                .as_ref()
                .filter(|c| c.outputs.contains(&spec.name))
            {
                class_names(&mut json, &class.names);
            }
            encoded.push((spec.name.clone(), json));
        }
        Ok(InferenceResponse {
            model: entry.name.clone(),
            model_version: entry.version(),
            source: model.source,
            rows,
            outputs: encoded,
            labels,
            text: None,
        })
    }

    /// Tokenize, run once for the whole batch (every window of every context), then pool,
    /// classify, score or pick answer spans.
    fn infer_text(
        &self,
        ix: usize,
        texts: &TextInputs,
        top_k: Option<usize>,
        deadline: Option<Instant>,
    ) -> Result<InferenceResponse, RequestError> {
        let entry = &self.slots[ix].model.entry;
        let Some(pipeline) = &entry.pipeline else {
            return Err(RequestError::bad(format!(
                "{}: model {:?} was not packed with a tokenizer; send \"inputs\" or \"features\"",
                texts.describe(),
                entry.name
            )));
        };
        TextModel::accepts(pipeline, texts, top_k)?;
        let model = self.loaded(ix, deadline)?;
        let text = model.text.as_ref().ok_or_else(|| {
            RequestError::Internal(format!("model {:?}: text pipeline missing", entry.name))
        })?;
        let encoded = text.encode(texts, top_k)?;
        // The tokenizer's vocabulary should fit the model's table; a mismatched pair must
        // not read past it.
        let field = |i: usize| format!("text (token {:?})", entry.inputs[i].name);
        check_indices(&encoded.inputs, &model.index_limits, field)?;
        check_limits(entry, &encoded.inputs, field)?;
        let internal = |e: String| RequestError::Internal(format!("model {:?}: {e}", entry.name));
        let runner = self.runner(entry, &model.plans, &encoded.inputs)?;
        // The pipeline answers from its output; nothing else is encoded.
        let need = runner.bytes(&encoded.inputs, |_| false);
        check_memory(need, self.memory_limit, &entry.name)?;
        let outputs = runner
            .run(encoded.inputs.clone())
            .map_err(|e| internal(format!("{e:#}")))?;
        let answer = text.answer(&encoded, &outputs, &entry.labels)?;
        Ok(InferenceResponse {
            model: entry.name.clone(),
            model_version: entry.version(),
            source: model.source,
            rows: texts.rows(),
            outputs: Vec::new(),
            labels: None,
            text: Some(answer),
        })
    }
}

impl Registry {
    /// The plan these inputs run on, built now if it is one built on first use (noted for
    /// the metrics). A shape the model cannot run is the request's fault: 400.
    fn runner(
        &self,
        entry: &ModelEntry,
        plans: &Plans,
        inputs: &[TValue],
    ) -> Result<Runner, RequestError> {
        let runner = plans.runner(inputs).map_err(|e| match e {
            NoPlan::Shape(why) => RequestError::bad(format!("model {:?}: {why}", entry.name)),
            NoPlan::Internal(why) => {
                RequestError::Internal(format!("model {:?}: {why}", entry.name))
            }
        })?;
        self.built_plan(runner.build.clone());
        if runner.too_small(inputs) {
            return Err(RequestError::bad(format!(
                "model {:?}: the inputs are too small for it: a size the model computes from their shapes comes out negative (a window or kernel longer than the input?); it takes {}",
                entry.name,
                entry
                    .inputs
                    .iter()
                    .map(|s| format!(
                        "{} [{}]",
                        s.name,
                        s.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        Ok(runner)
    }
}

/// A text model's limits hold for raw token inputs too: `[batch, sequence]` at most
/// `max_batch` × `max_length`, as the tokenizer would have made them.
fn pipeline_limits(
    inputs: &[TValue],
    pipeline: &model_lock::TextPipeline,
    name_of: impl Fn(usize) -> String,
) -> Result<(), RequestError> {
    for (i, t) in inputs.iter().enumerate() {
        let shape = t.shape();
        if let Some(batch) = shape.first().filter(|b| **b > pipeline.max_batch) {
            return Err(RequestError::OverLimit(format!(
                "field \"{}\": a batch of {batch}, more than this model takes in one request ({}, pipeline.max_batch)",
                name_of(i),
                pipeline.max_batch
            )));
        }
        if let Some(seq) = shape.get(1).filter(|s| **s > pipeline.max_length) {
            return Err(RequestError::bad(format!(
                "field \"{}\": sequences of {seq} tokens, more than this model's max_length {}",
                name_of(i),
                pipeline.max_length
            )));
        }
    }
    Ok(())
}

/// The request field an input came from, for error messages.
fn input_field(inputs: &RequestInputs, name: &str) -> String {
    match inputs {
        RequestInputs::Features(_) => "features".into(),
        _ => format!("inputs.{name}"),
    }
}

fn names(specs: &[TensorSpec]) -> String {
    specs
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn build_inputs(entry: &ModelEntry, inputs: &RequestInputs) -> Result<TVec<TValue>, RequestError> {
    let mut symbols = SymbolValues::new();
    match inputs {
        RequestInputs::Features(value) => {
            let [spec] = entry.inputs.as_slice() else {
                return Err(RequestError::bad(format!(
                    "field \"features\" works for single-input models; model {:?} takes inputs {}: use \"inputs\": {{\"<name>\": [...]}}",
                    entry.name,
                    names(&entry.inputs)
                )));
            };
            let rank = spec.shape.len();
            // One row: add the batch axis.
            let wrapped;
            let value = if rank > 0 && nesting_depth(value) == rank - 1 {
                wrapped = Value::Array(vec![value.clone()]);
                &wrapped
            } else {
                value
            };
            let t = json_to_tensor("features", value, spec, &mut symbols)?;
            Ok(tvec![t.into()])
        }
        RequestInputs::Text(_) => Err(RequestError::Internal(
            "text requests are tokenized, not decoded as tensors".into(),
        )),
        RequestInputs::Named(map) => {
            for (name, fixed) in &entry.constants {
                if let Some(sent) = map.get(name) {
                    if !same_value(sent, fixed) {
                        return Err(RequestError::bad(format!(
                            "field \"inputs.{name}\": this deployment fixes input {name:?} to {fixed} (packed as a constant): send {fixed} or leave it out"
                        )));
                    }
                }
            }
            if let Some(unknown) = map.keys().find(|k| {
                !entry.inputs.iter().any(|s| &s.name == *k) && !entry.constants.contains_key(*k)
            }) {
                return Err(RequestError::bad(format!(
                    "field \"inputs\": model {:?} has no input {}; its inputs are {}",
                    entry.name,
                    quote(unknown),
                    names(&entry.inputs)
                )));
            }
            let mut out = TVec::new();
            for spec in &entry.inputs {
                let value = map.get(&spec.name).ok_or_else(|| {
                    RequestError::bad(format!(
                        "field \"inputs\": missing input {:?} ({} of shape [{}]); model {:?} takes {}",
                        spec.name,
                        spec.dtype,
                        spec.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
                        entry.name,
                        names(&entry.inputs)
                    ))
                })?;
                let field = format!("inputs.{}", spec.name);
                out.push(json_to_tensor(&field, value, spec, &mut symbols)?.into());
            }
            Ok(out)
        }
    }
}

/// Whether a request's value for a constant input is the constant: the same nesting and
/// numbers (`16000` and `16000.0` alike), or the same strings and booleans.
fn same_value(sent: &Value, fixed: &Value) -> bool {
    match (sent, fixed) {
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value(x, y))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

/// A label output of a model exported with string class labels, answered with the names
/// (an index outside them, which the rewritten classifier cannot produce, is null).
fn class_names(value: &mut Value, names: &[String]) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|v| class_names(v, names)),
        Value::Number(n) => {
            *value = n
                .as_u64()
                .and_then(|i| names.get(i as usize))
                .map_or(Value::Null, |name| Value::String(name.clone()));
        }
        _ => {}
    }
}

/// Class names for classifiers: from an integer label output of rank 1 when the model has
/// one (scikit-learn exports do), otherwise the argmax of the first float output whose last
/// axis has one entry per label. A row whose scores are not all finite has no label (null):
/// a NaN input must not come back as a confident class.
fn predicted_labels(entry: &ModelEntry, outputs: &[TValue]) -> Option<Vec<Option<String>>> {
    if entry.labels.is_empty() {
        return None;
    }
    let n = entry.labels.len();
    let pick = |ix: usize| entry.labels.get(ix).cloned();
    let labels: Vec<Option<String>> =
        'found: {
            for (spec, value) in entry.outputs.iter().zip(outputs) {
                if matches!(spec.dtype, DType::I64 | DType::I32) && value.rank() == 1 {
                    let classes = value.cast_to::<i64>().ok()?;
                    let classes = slice_of::<i64>(&classes).ok()?;
                    break 'found classes
                        .iter()
                        .map(|c| usize::try_from(*c).ok().and_then(pick))
                        .collect();
                }
            }
            for (spec, value) in entry.outputs.iter().zip(outputs) {
                if matches!(spec.dtype, DType::F32 | DType::F64)
                    && value.rank() >= 1
                    && value.shape().last() == Some(&n)
                {
                    let scores = value.cast_to::<f64>().ok()?;
                    let scores = slice_of::<f64>(&scores).ok()?;
                    break 'found scores
                        .chunks(n)
                        .map(|row| {
                            let best = row.iter().enumerate().fold(0, |best, (i, v)| {
                                if *v > row[best] {
                                    i
                                } else {
                                    best
                                }
                            });
                            pick(best)
                        })
                        .collect();
                }
            }
            return None;
        };
    let rows = labels.len();
    let finite = finite_rows(outputs, rows);
    Some(
        labels
            .into_iter()
            .zip(finite)
            .map(|(label, ok)| label.filter(|_| ok))
            .collect(),
    )
}

/// Per row (the first axis), whether every float output's values in it are finite. Read in
/// place: this runs on every labelled request, so no output is copied.
fn finite_rows(outputs: &[TValue], rows: usize) -> Vec<bool> {
    fn mark<T: Datum + Copy>(value: &Tensor, rows: usize, finite: &mut [bool], ok: fn(T) -> bool) {
        let Ok(values) = slice_of::<T>(value) else {
            return;
        };
        let per_row = values.len() / rows.max(1);
        if per_row == 0 {
            return;
        }
        for (f, row) in finite.iter_mut().zip(values.chunks(per_row)) {
            *f &= row.iter().all(|v| ok(*v));
        }
    }
    let mut finite = vec![true; rows];
    for value in outputs {
        if value.rank() == 0 || value.shape()[0] != rows {
            continue;
        }
        match value.datum_type() {
            DatumType::F32 => mark::<f32>(value, rows, &mut finite, f32::is_finite),
            DatumType::F64 => mark::<f64>(value, rows, &mut finite, f64::is_finite),
            _ => {}
        }
    }
    finite
}
