//! Verifying and loading one model: the copy the registry was given when it has the build's
//! hash, otherwise a copy from the fallback stores checked against that same hash.

use std::time::{Duration, Instant};

use crate::checksum;
use crate::error::InitError;
use crate::fallback::{self, FallbackConfig};
use crate::loader::{self, Decoded, LoadedModel, PhaseTimings};
use crate::plans::PlanCacheLimits;
use crate::text::TextModel;

use super::PackedModel;

/// The tokenizer and pipeline of a text model, and how long building them took.
struct TextLoad {
    text: Result<Option<TextModel>, InitError>,
    elapsed: Duration,
}

/// Where the verified bytes came from and how many there were, for the load log line.
struct Origin {
    source: &'static str,
    len: usize,
}

pub(super) fn load_model(
    model: &PackedModel,
    fallback: &FallbackConfig,
    plans: PlanCacheLimits,
) -> Result<LoadedModel, InitError> {
    let name = &model.entry.name;
    let given_failure = match &model.bytes {
        Some(bytes) => match load_given(model, bytes.as_slice(), plans) {
            Ok(loaded) => return Ok(loaded),
            Err(mismatch @ InitError::ChecksumMismatch { .. }) => {
                if fallback.is_disabled() {
                    return Err(mismatch);
                }
                tracing::error!(model = %name, error = %mismatch, "embedded copy failed its checksum; trying the fallback stores");
                format!("embedded: {mismatch}")
            }
            Err(other) => return Err(other),
        },
        None => {
            if fallback.is_disabled() {
                return Err(InitError::NotEmbedded {
                    model: name.clone(),
                });
            }
            match model.entry.artifact {
                model_lock::Artifact::Image => {
                    "embedded: an image model (artifact = \"image\"), never in the binary"
                        .to_string()
                }
                model_lock::Artifact::Zip => {
                    "embedded: not embedded in this binary (embed = false)".to_string()
                }
            }
        }
    };
    let started = Instant::now();
    let expected = fallback::Expected {
        name,
        sha256: &model.entry.sha256,
        size: model.entry.size,
        format: model.entry.format,
    };
    match fallback::fetch(fallback, expected) {
        Ok(found) => {
            let verify = started.elapsed();
            let decoded = decode(model, &found.bytes, plans)?;
            let text = text_load(model);
            finish(
                model,
                Origin {
                    source: found.source,
                    len: found.bytes.len(),
                },
                decoded,
                verify,
                text,
            )
        }
        Err(exhausted) => Err(InitError::NoSource {
            model: name.clone(),
            tried: std::iter::once(given_failure)
                .chain(exhausted.tried)
                .collect(),
        }),
    }
}

/// The copy the registry was given (normally the embedded one): its hash (then the
/// tokenizer) on a second thread while this one decodes and optimizes. The plan is used only
/// once the hash matches, so a corrupt copy still never serves; where the function has two
/// vCPUs the hash and the tokenizer parse leave the cold start's critical path, and with one
/// they cost what they did in sequence.
fn load_given(
    model: &PackedModel,
    bytes: &[u8],
    plans: PlanCacheLimits,
) -> Result<LoadedModel, InitError> {
    let expected = model.entry.sha256.as_str();
    let (side, decoded) = std::thread::scope(|scope| {
        let side = scope.spawn(|| {
            let started = Instant::now();
            let verified = checksum::verify_sha256(bytes, expected);
            let verify = started.elapsed();
            let text = verified.is_ok().then(|| text_load(model));
            (verified, verify, text)
        });
        // Bytes that fail the hash may be anything: a panic in the decoder on them must not
        // take the process down before the fallback stores are tried.
        let decoded =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode(model, bytes, plans)));
        (side.join(), decoded)
    });
    let load_error = |message: &str| InitError::Load {
        model: model.entry.name.clone(),
        message: message.into(),
    };
    let (verified, verify, text) =
        side.map_err(|_| load_error("the checksum or tokenizer thread panicked"))?;
    if let Err(mismatch) = verified {
        return Err(InitError::ChecksumMismatch {
            model: model.entry.name.clone(),
            expected: mismatch.expected,
            actual: mismatch.actual,
        });
    }
    let decoded = decoded.map_err(|_| load_error("tract panicked while decoding the model"))??;
    let text = text.unwrap_or(TextLoad {
        text: Ok(None),
        elapsed: Duration::ZERO,
    });
    finish(
        model,
        Origin {
            source: "embedded",
            len: bytes.len(),
        },
        decoded,
        verify,
        text,
    )
}

fn decode(model: &PackedModel, bytes: &[u8], plans: PlanCacheLimits) -> Result<Decoded, InitError> {
    loader::load(bytes, &model.entry, plans).map_err(|e| InitError::Load {
        model: model.entry.name.clone(),
        message: e.to_string(),
    })
}

fn text_load(model: &PackedModel) -> TextLoad {
    let started = Instant::now();
    let text = text_model(model);
    TextLoad {
        text,
        elapsed: started.elapsed(),
    }
}

fn finish(
    model: &PackedModel,
    origin: Origin,
    decoded: Decoded,
    verify: Duration,
    text: TextLoad,
) -> Result<LoadedModel, InitError> {
    let text_model = text.text?;
    let timings = PhaseTimings {
        verify,
        decode: decoded.decode,
        declutter: decoded.declutter,
        optimize: decoded.optimize,
        tokenizer: text.elapsed,
    };
    tracing::info!(
        model = %model.entry.name,
        source = origin.source,
        bytes = origin.len,
        verify_ms = ms(timings.verify),
        format = %model.entry.format,
        plans = %model.entry.plans,
        decode_ms = ms(timings.decode),
        declutter_ms = ms(timings.declutter),
        optimize_ms = ms(timings.optimize),
        kernels = %decoded.kernels,
        tokenizer_ms = ms(timings.tokenizer),
        "model loaded"
    );
    Ok(LoadedModel {
        plans: decoded.plans,
        index_limits: decoded.index_limits,
        source: origin.source,
        text: text_model,
    })
}

/// The tokenizer and pipeline of a text model, the tokenizer checked against the hash the
/// build recorded for it.
fn text_model(model: &PackedModel) -> Result<Option<TextModel>, InitError> {
    let entry = &model.entry;
    if entry.pipeline.is_none() {
        return Ok(None);
    }
    let load_error = |message: String| InitError::Load {
        model: entry.name.clone(),
        message,
    };
    let (Some(expected), Some(bytes)) = (&entry.tokenizer, &model.tokenizer) else {
        return Err(load_error(
            "a text pipeline needs a tokenizer, and none was packed".into(),
        ));
    };
    checksum::verify_sha256(bytes.as_slice(), &expected.sha256).map_err(|m| {
        load_error(format!(
            "tokenizer checksum mismatch: expected sha256 {}, embedded bytes hash to {}",
            m.expected, m.actual
        ))
    })?;
    TextModel::new(entry, bytes.as_slice())
        .map(Some)
        .map_err(load_error)
}

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
