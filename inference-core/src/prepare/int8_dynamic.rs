//! `quantize = "int8-dynamic"` at pack time: the compiled form with the matrix products on
//! int8 (`int8/dynamic.rs`), gated like weight-only int8 by `max_drift` against the original
//! f32 model's answers to every sample request. When the whole model breaks the gate, the
//! products whose int8 answers drift most stay f32, one at a time, until it holds.

use model_lock::ModelEntry;
use serde_json::Value;

use super::compile::Decluttered;
use super::{check, within_drift, Checked, Drift, MaxDrift, PrepareError};

/// What `quantize = "int8-dynamic"` packed.
#[derive(Debug, Clone)]
pub struct DynamicInt8 {
    /// The compiled form.
    pub bytes: Vec<u8>,
    /// Its answers to the sample requests, loaded as the function loads it.
    pub checked: Checked,
    /// The worst drift of those answers from the original's.
    pub drift: Drift,
    /// The products on int8, in graph order.
    pub int8: Vec<String>,
    /// The products kept f32 to stay within `max_drift`, the worst first.
    pub f32: Vec<String>,
}

/// One compiled form tried: its bytes, answers and drift.
struct Trial {
    bytes: Vec<u8>,
    checked: Checked,
    drift: Drift,
}

/// Any drift at all: for ranking, not gating.
const UNBOUNDED: MaxDrift = MaxDrift {
    cosine: f64::NEG_INFINITY,
    max_abs: f64::INFINITY,
};

/// How far past `limit` a drift is, as a fraction of the limit (≤ 1 passes).
fn excess(drift: Drift, limit: MaxDrift) -> f64 {
    let cosine = (1.0 - drift.cosine) / (1.0 - limit.cosine).max(f64::MIN_POSITIVE);
    let abs = drift.max_abs / limit.max_abs.max(f64::MIN_POSITIVE);
    // NaN (an answer that is no longer a number) is the worst.
    if cosine.is_nan() || abs.is_nan() {
        f64::INFINITY
    } else {
        cosine.max(abs)
    }
}

/// The compiled form of packed ONNX `onnx` (served as `entry`) with as many products on
/// int8 as `max_drift` allows, measured against `reference`, the original model's answers
/// to `samples`.
pub fn int8_dynamic(
    entry: &ModelEntry,
    onnx: &[u8],
    tokenizer: Option<&[u8]>,
    samples: &[Value],
    reference: &[Value],
    max_drift: MaxDrift,
) -> Result<DynamicInt8, PrepareError> {
    let decluttered = Decluttered::new(onnx, &entry.inputs)?;
    let products = decluttered.products()?;
    if products.is_empty() {
        return Err(PrepareError::Int8Dynamic(
            "quantize = \"int8-dynamic\": the model has no matrix product with a constant weight to run on int8 (convolutions and products of two activations stay f32); use quantize = \"int8\"".into(),
        ));
    }
    let trial = |keep_f32: &[String]| -> Result<Trial, PrepareError> {
        let bytes = decluttered.write(Some(keep_f32))?;
        let compiled = super::compiled_entry(entry, &bytes);
        let checked = check(&compiled, &bytes, tokenizer, samples)?;
        let drift = within_drift(reference, &checked.answers, UNBOUNDED).unwrap_or_else(|d| d);
        Ok(Trial {
            bytes,
            checked,
            drift,
        })
    };
    let done = |t: Trial, f32: Vec<String>| DynamicInt8 {
        int8: products
            .iter()
            .filter(|p| !f32.contains(p))
            .cloned()
            .collect(),
        bytes: t.bytes,
        checked: t.checked,
        drift: t.drift,
        f32,
    };
    let all = trial(&[])?;
    if max_drift.allows(all.drift).is_ok() {
        return Ok(done(all, Vec::new()));
    }
    // Each product alone on int8: how far it moves the answers.
    let mut alone = Vec::with_capacity(products.len());
    for p in &products {
        let others: Vec<String> = products.iter().filter(|o| *o != p).cloned().collect();
        alone.push((excess(trial(&others)?.drift, max_drift), p.clone()));
    }
    alone.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut keep_f32 = Vec::new();
    for (_, p) in alone.into_iter().take(products.len() - 1) {
        keep_f32.push(p);
        let t = trial(&keep_f32)?;
        if max_drift.allows(t.drift).is_ok() {
            return Ok(done(t, keep_f32));
        }
    }
    Err(PrepareError::Int8Dynamic(format!(
        "quantize = \"int8-dynamic\": with any of its {} matrix products on int8 the answers drift past max_drift (cosine {}, max abs {}; all on int8: cosine {:.5}, max abs {:.5}); use quantize = \"int8\" or raise max_drift",
        products.len(),
        max_drift.cosine,
        max_drift.max_abs,
        all.drift.cosine,
        all.drift.max_abs
    )))
}
