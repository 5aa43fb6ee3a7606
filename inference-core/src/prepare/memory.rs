//! A request's memory cost, measured at pack time: the peak heap of two requests of
//! different sizes, run through the registry exactly as the function runs them, extrapolated
//! linearly in the input values and given a margin. The function turns it and its memory
//! size into the default cap on a request (`work::check_cost`).

use std::collections::BTreeMap;

use model_lock::{Dim, MemoryCost, ModelEntry};
use serde_json::{json, Value};

use crate::registry::{PackedModel, Registry};
use crate::settings::{LoadMode, Settings};

use super::check::generated_request;
use super::PrepareError;

/// The allocator's peak, which the caller owns (xtask counts its heap, per thread): `reset`
/// starts a new peak from what is allocated now and returns that; `peak` is the highest
/// since. The requests run on the calling thread.
pub trait PeakMeter {
    fn reset(&self) -> u64;
    fn peak(&self) -> u64;
}

/// The margin on what was measured: allocator rounding and fragmentation, kernels whose
/// scratch grows faster than linearly between the sizes measured.
const MARGIN: (u64, u64) = (3, 2);
/// The fixed cost is recorded in steps of this many bytes.
const FIXED_STEP: u64 = 64 << 10;
/// Rows in the two requests of a model whose only symbolic dim is the batch.
const ROWS: [usize; 2] = [4, 64];

/// The measured cost of `entry`'s requests, `None` for a text model (its pipeline caps a
/// request) or one whose inputs have no symbolic dim.
pub fn memory_cost(
    entry: &ModelEntry,
    bytes: &[u8],
    strings: &BTreeMap<String, String>,
    probes: &[BTreeMap<String, Vec<u64>>],
    meter: &dyn PeakMeter,
) -> Result<Option<MemoryCost>, PrepareError> {
    let symbolic = entry
        .inputs
        .iter()
        .any(|s| s.shape.iter().any(|d| matches!(d, Dim::Symbol(_))));
    if entry.pipeline.is_some() || !symbolic {
        return Ok(None);
    }
    // Two sizes: the two probe shapes, else the one probe (or none) with more rows.
    let requests: Vec<Value> = match probes {
        [a, b, ..] => vec![
            generated_request(&entry.inputs, strings, Some(a), None),
            generated_request(&entry.inputs, strings, Some(b), None),
        ],
        _ => ROWS
            .iter()
            .map(|rows| generated_request(&entry.inputs, strings, probes.first(), Some(*rows)))
            .collect(),
    };
    let model = PackedModel {
        entry: entry.clone(),
        bytes: Some(bytes.to_vec().into()),
        tokenizer: None,
    };
    let registry = Registry::new(vec![model], None, &Settings::embedded_only(LoadMode::Eager))
        .map_err(PrepareError::Load)?;
    let mut measured = Vec::new();
    for request in &requests {
        let mut request = request.clone();
        request["model"] = json!(entry.name);
        let elements = count_numbers(&request["inputs"]);
        // The first run builds what is built on first use; the second is measured.
        registry
            .handle_value(request.clone())
            .map_err(PrepareError::Sample)?;
        let base = meter.reset();
        registry
            .handle_value(request)
            .map_err(PrepareError::Sample)?;
        measured.push((elements, meter.peak().saturating_sub(base)));
    }
    let [(e1, m1), (e2, m2)] = [measured[0], measured[1]];
    // Each value costs at least its own 4 bytes.
    let per = match e2.checked_sub(e1).filter(|d| *d > 0) {
        Some(d) => m2.saturating_sub(m1) / d,
        None => 0,
    }
    .max(4);
    let fixed = m1.saturating_sub(per * e1);
    let margin = |n: u64| n.saturating_mul(MARGIN.0) / MARGIN.1;
    // Rounded up, so allocator noise of a few bytes does not change the lock at every pack.
    Ok(Some(MemoryCost {
        fixed_bytes: margin(fixed).div_ceil(FIXED_STEP) * FIXED_STEP,
        bytes_per_input_element: margin(per).div_ceil(4) * 4,
    }))
}

/// Leaf values in a request's inputs.
fn count_numbers(value: &Value) -> u64 {
    match value {
        Value::Array(items) => items.iter().map(count_numbers).sum(),
        Value::Object(map) => map.values().map(count_numbers).sum(),
        _ => 1,
    }
}
