//! Which form of a model is packed: ONNX, the compiled form (`compile = "auto"` keeps it
//! when it loads clearly faster), or int8-dynamic's compiled form within `max_drift`.

use anyhow::{Context, Result};
use inference_core::prepare::{self, MaxDrift};
use serde_json::Value;

use super::manifest::Compile;
use super::Packed;

/// Loads timed per form when `compile = "auto"` decides; the best one counts.
const LOAD_RUNS: usize = 3;

/// `compile = "auto"`: the compiled form must load faster by a tenth and a millisecond, so
/// a re-pack does not flip between forms on noise.
fn keep_compiled(onnx_ms: f64, compiled_ms: f64) -> bool {
    compiled_ms < onnx_ms * 0.9 && compiled_ms + 1.0 < onnx_ms
}

/// The compiled form of a packed ONNX model, proved to answer every sample request as the
/// ONNX did, and with `compile = "auto"` kept only if it loads clearly faster
/// ([`keep_compiled`]). A graph tract
/// cannot serialize stays ONNX (said on stderr); a compiled form that answers differently
/// fails the pack.
pub(super) fn compiled(
    onnx: Packed,
    samples: &[Value],
    answers: &[Value],
    mode: Compile,
) -> Result<Packed> {
    let name = &onnx.entry.name;
    let bytes = match prepare::compile(&onnx.bytes, &onnx.entry.inputs) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("{name}: packed as ONNX, not compiled: {e}");
            return Ok(onnx);
        }
    };
    let entry = prepare::compiled_entry(&onnx.entry, &bytes);
    let checked = match prepare::check(&entry, &bytes, onnx.tokenizer.as_deref(), samples) {
        Ok(checked) => checked,
        // tract wrote what it cannot read back: a writer limitation, not a different graph.
        Err(e @ prepare::PrepareError::Load(_)) => {
            eprintln!(
                "{name}: packed as ONNX, not compiled: the compiled form does not read back: {e}"
            );
            return Ok(onnx);
        }
        Err(e) => return Err(e.into()),
    };
    prepare::same_answers(answers, &checked.answers)?;
    if mode == Compile::Auto {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        let onnx_ms = ms(prepare::load_time(&onnx.entry, &onnx.bytes, LOAD_RUNS)?);
        let compiled_ms = ms(prepare::load_time(&entry, &bytes, LOAD_RUNS)?);
        let faster = keep_compiled(onnx_ms, compiled_ms);
        eprintln!(
            "{name}: loads in {onnx_ms:.1} ms as ONNX, {compiled_ms:.1} ms compiled: packed {}",
            if faster { "compiled" } else { "as ONNX" }
        );
        if !faster {
            return Ok(onnx);
        }
    }
    Ok(Packed {
        entry,
        bytes,
        load_ms: checked.load_ms,
        ..onnx
    })
}

/// `quantize = "int8-dynamic"`: the compiled form with as many matrix products on int8 as
/// `max_drift` allows against `reference`, the original's answers to `samples`. Which
/// products stayed f32 is said on stderr.
pub(super) fn int8_dynamic(
    onnx: Packed,
    samples: &[Value],
    reference: &[Value],
    max_drift: MaxDrift,
) -> Result<Packed> {
    let name = &onnx.entry.name;
    let dynamic = prepare::int8_dynamic(
        &onnx.entry,
        &onnx.bytes,
        onnx.tokenizer.as_deref(),
        samples,
        reference,
        max_drift,
    )
    .with_context(|| format!("{name}: quantize = \"int8-dynamic\""))?;
    eprintln!(
        "{name}: int8-dynamic: {} of {} matrix products on int8 (cosine {:.5}, max abs {:.5} to the original on {} sample request{}){}",
        dynamic.int8.len(),
        dynamic.int8.len() + dynamic.f32.len(),
        dynamic.drift.cosine,
        dynamic.drift.max_abs,
        samples.len(),
        if samples.len() == 1 { "" } else { "s" },
        if dynamic.f32.is_empty() {
            String::new()
        } else {
            format!("; kept f32 to stay within max_drift: {}", dynamic.f32.join(", "))
        }
    );
    Ok(Packed {
        entry: prepare::compiled_entry(&onnx.entry, &dynamic.bytes),
        bytes: dynamic.bytes,
        load_ms: dynamic.checked.load_ms,
        drift: Some(dynamic.drift),
        ..onnx
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_keeps_the_compiled_form_only_when_it_loads_clearly_faster() {
        assert!(keep_compiled(100.0, 80.0));
        assert!(!keep_compiled(100.0, 95.0), "within a tenth: noise");
        assert!(!keep_compiled(1.5, 0.8), "within a millisecond: noise");
        assert!(!keep_compiled(0.6, 9.0), "slower");
    }
}
