//! The model registry: which models this function serves, loading them (eagerly at init or
//! on first use), and answering requests.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use model_lock::{DType, EmbeddedModel, ModelEntry, PackedModels};
use serde_json::Value;
use tract_onnx::prelude::*;

use crate::checksum;
use crate::error::{InitError, RequestError};
use crate::fallback::{self, FallbackConfig};
use crate::loader::{self, LoadedModel, PhaseTimings};
use crate::request::{InferenceRequest, RequestInputs};
use crate::response::InferenceResponse;
use crate::tensor_json::{json_to_tensor, nesting_depth, slice_of, tensor_to_json, SymbolValues};

/// When models are loaded. `MODEL_LOAD=lazy` in the function's environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadMode {
    /// Every model at init: the first request pays nothing.
    #[default]
    Eager,
    /// On first use, then cached: for functions with many models.
    Lazy,
}

impl LoadMode {
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "eager" => Ok(LoadMode::Eager),
            "lazy" => Ok(LoadMode::Lazy),
            other => Err(format!(
                "MODEL_LOAD={other:?}: expected \"eager\" or \"lazy\""
            )),
        }
    }
}

struct Slot {
    embedded: EmbeddedModel,
    entry: ModelEntry,
    loaded: Mutex<Option<Arc<LoadedModel>>>,
    /// Loaded at init and kept: never evicted.
    pinned: bool,
}

/// How many models loaded on first use stay in memory by default (`MODEL_MAX_LOADED`).
pub const DEFAULT_MAX_LOADED: usize = 8;

/// How the registry loads models.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: LoadMode,
    /// Where to look when an embedded copy is missing or corrupt.
    pub fallback: FallbackConfig,
    /// The LRU cap on models loaded on first use (`embed = false`, or lazy mode); models
    /// loaded at init are not counted and never evicted.
    pub max_loaded: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: LoadMode::Eager,
            fallback: FallbackConfig::disabled(),
            max_loaded: DEFAULT_MAX_LOADED,
        }
    }
}

pub struct Registry {
    default_model: Option<String>,
    slots: Vec<Slot>,
    fallback: FallbackConfig,
    max_loaded: usize,
    /// Slots loaded on demand, least recently used first.
    recent: Mutex<VecDeque<usize>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("default_model", &self.default_model)
            .field("models", &self.model_names())
            .finish()
    }
}

/// Verify and load one model: the embedded copy when it has the build's hash, otherwise a
/// copy from the fallback stores checked against that same hash.
fn load_model(
    embedded: &EmbeddedModel,
    entry: &ModelEntry,
    fallback: &FallbackConfig,
) -> Result<LoadedModel, InitError> {
    let embedded_failure = match embedded.bytes {
        Some(bytes) => match load_embedded(embedded, entry, bytes) {
            Ok(loaded) => return Ok(loaded),
            Err(mismatch @ InitError::ChecksumMismatch { .. }) => {
                if fallback.is_disabled() {
                    return Err(mismatch);
                }
                tracing::error!(model = %entry.name, error = %mismatch, "embedded copy failed its checksum; trying the fallback stores");
                format!("embedded: {mismatch}")
            }
            Err(other) => return Err(other),
        },
        None => {
            if fallback.is_disabled() {
                return Err(InitError::NotEmbedded {
                    model: entry.name.clone(),
                });
            }
            "embedded: not embedded in this binary (embed = false)".to_string()
        }
    };
    let started = Instant::now();
    match fallback::fetch(fallback, &entry.name, embedded.sha256) {
        Ok(found) => {
            let verify = started.elapsed();
            let (plan, decode, optimize) = decode_and_optimize(entry, &found.bytes)?;
            let text = timed(|| text_model(entry, embedded));
            finish_load(
                entry,
                found.bytes.len(),
                found.source,
                (plan, decode, optimize, verify),
                text,
            )
        }
        Err(exhausted) => Err(InitError::NoSource {
            model: entry.name.clone(),
            tried: std::iter::once(embedded_failure)
                .chain(exhausted.tried)
                .collect(),
        }),
    }
}

/// The embedded copy: its hash (then the tokenizer) on a second thread while this one decodes
/// and optimizes. The plan is used only once the hash matches, so a corrupt copy still never
/// serves; where the function has two vCPUs the hash and the tokenizer parse leave the cold
/// start's critical path, and with one they cost what they did in sequence.
fn load_embedded(
    embedded: &EmbeddedModel,
    entry: &ModelEntry,
    bytes: &'static [u8],
) -> Result<LoadedModel, InitError> {
    let (side, decoded) = std::thread::scope(|scope| {
        let side = scope.spawn(|| {
            let started = Instant::now();
            let verified = checksum::verify(bytes, embedded.sha256);
            let verify = started.elapsed();
            let text = verified
                .is_ok()
                .then(|| timed(|| text_model(entry, embedded)));
            (verified, verify, text)
        });
        // Bytes that fail the hash may be anything: a panic in the decoder on them must not
        // take the process down before the fallback stores are tried.
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            decode_and_optimize(entry, bytes)
        }));
        (side.join(), decoded)
    });
    let (verified, verify, text) = side.map_err(|_| InitError::Load {
        model: entry.name.clone(),
        message: "the checksum or tokenizer thread panicked".into(),
    })?;
    if let Err(actual) = verified {
        return Err(InitError::ChecksumMismatch {
            model: entry.name.clone(),
            expected: embedded.sha256.to_string(),
            actual,
        });
    }
    let (plan, decode, optimize) = decoded.map_err(|_| InitError::Load {
        model: entry.name.clone(),
        message: "tract panicked while decoding the model".into(),
    })??;
    let text = text.unwrap_or_else(|| (Ok(None), Default::default()));
    finish_load(
        entry,
        bytes.len(),
        "embedded",
        (plan, decode, optimize, verify),
        text,
    )
}

type Decoded = (loader::Plan, std::time::Duration, std::time::Duration);

fn decode_and_optimize(entry: &ModelEntry, bytes: &[u8]) -> Result<Decoded, InitError> {
    loader::load(bytes, entry).map_err(|message| InitError::Load {
        model: entry.name.clone(),
        message,
    })
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, std::time::Duration) {
    let started = Instant::now();
    let value = f();
    (value, started.elapsed())
}

type TextLoad = (
    Result<Option<crate::text::TextModel>, InitError>,
    std::time::Duration,
);

fn finish_load(
    entry: &ModelEntry,
    len: usize,
    source: &'static str,
    (plan, decode, optimize, verify): (
        loader::Plan,
        std::time::Duration,
        std::time::Duration,
        std::time::Duration,
    ),
    (text, tokenizer): TextLoad,
) -> Result<LoadedModel, InitError> {
    let text = text?;
    let timings = PhaseTimings {
        verify,
        decode,
        optimize,
        tokenizer,
    };
    tracing::info!(
        model = %entry.name,
        source,
        bytes = len,
        verify_ms = ms(timings.verify),
        decode_ms = ms(timings.decode),
        optimize_ms = ms(timings.optimize),
        tokenizer_ms = ms(timings.tokenizer),
        "model loaded"
    );
    Ok(LoadedModel {
        entry: entry.clone(),
        plan,
        source,
        timings,
        text,
    })
}

/// The tokenizer and pipeline of a text model, the tokenizer checked against the hash the
/// build recorded for it.
fn text_model(
    entry: &ModelEntry,
    embedded: &EmbeddedModel,
) -> Result<Option<crate::text::TextModel>, InitError> {
    if entry.pipeline.is_none() {
        return Ok(None);
    }
    let load_error = |message: String| InitError::Load {
        model: entry.name.clone(),
        message,
    };
    let (Some(expected), Some(bytes)) = (&entry.tokenizer, embedded.tokenizer) else {
        return Err(load_error(
            "a text pipeline needs a tokenizer, and none was packed".into(),
        ));
    };
    checksum::verify(bytes, &expected.sha256).map_err(|actual| {
        load_error(format!(
            "tokenizer checksum mismatch: expected sha256 {}, embedded bytes hash to {actual}",
            expected.sha256
        ))
    })?;
    crate::text::TextModel::new(entry, bytes)
        .map(Some)
        .map_err(load_error)
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Registry {
    /// Builds the registry from what the build embedded, with no fallback store.
    pub fn new(packed: &PackedModels, mode: LoadMode) -> Result<Self, InitError> {
        Self::with_options(
            packed,
            Options {
                mode,
                ..Options::default()
            },
        )
    }

    /// Builds the registry. In eager mode every embedded model is verified and loaded here
    /// (through the fallback stores if its embedded copy is corrupt), and any failure is an
    /// init error. `embed = false` models are always loaded on first use.
    pub fn with_options(packed: &PackedModels, options: Options) -> Result<Self, InitError> {
        let mut slots = Vec::with_capacity(packed.models.len());
        for embedded in packed.models {
            let entry =
                ModelEntry::from_json(embedded.entry_json).map_err(|e| InitError::BadEntry {
                    model: embedded.name.to_string(),
                    message: e.to_string(),
                })?;
            slots.push(Slot {
                embedded: *embedded,
                entry,
                loaded: Mutex::new(None),
                pinned: false,
            });
        }
        slots.sort_by(|a, b| a.entry.name.cmp(&b.entry.name));
        let default_model = match packed.default_model {
            Some(name) => {
                if !slots.iter().any(|s| s.entry.name == name) {
                    return Err(InitError::BadDefault(name.to_string()));
                }
                Some(name.to_string())
            }
            None if slots.len() == 1 => Some(slots[0].entry.name.clone()),
            None => None,
        };
        if options.mode == LoadMode::Eager {
            for slot in slots.iter_mut().filter(|s| s.embedded.bytes.is_some()) {
                let model = load_model(&slot.embedded, &slot.entry, &options.fallback)?;
                slot.loaded = Mutex::new(Some(Arc::new(model)));
                slot.pinned = true;
            }
        }
        Ok(Registry {
            default_model,
            slots,
            fallback: options.fallback,
            max_loaded: options.max_loaded.max(1),
            recent: Mutex::new(VecDeque::new()),
        })
    }

    pub fn model_names(&self) -> Vec<String> {
        self.slots.iter().map(|s| s.entry.name.clone()).collect()
    }

    pub fn default_model(&self) -> Option<&str> {
        self.default_model.as_deref()
    }

    pub fn entry(&self, name: &str) -> Option<&ModelEntry> {
        self.index(name).map(|ix| &self.slots[ix].entry)
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.entry.name == name)
    }

    fn resolve(&self, requested: Option<&str>) -> Result<usize, RequestError> {
        let name = match requested {
            Some(name) => name,
            None => self.default_model.as_deref().ok_or_else(|| {
                RequestError::bad(format!(
                    "field \"model\" is required: this function serves several models ({}) and none is the default",
                    self.model_names().join(", ")
                ))
            })?,
        };
        self.index(name).ok_or_else(|| RequestError::UnknownModel {
            name: name.to_string(),
            available: self.model_names(),
        })
    }

    /// The loaded model, loading it now if this is its first use.
    pub fn get(&self, name: &str) -> Result<Arc<LoadedModel>, RequestError> {
        let ix = self.resolve(Some(name))?;
        self.loaded(ix)
    }

    fn loaded(&self, ix: usize) -> Result<Arc<LoadedModel>, RequestError> {
        let slot = &self.slots[ix];
        let model = {
            let mut guard = slot.loaded.lock().unwrap_or_else(|e| e.into_inner());
            match guard.as_ref() {
                Some(model) => model.clone(),
                None => match load_model(&slot.embedded, &slot.entry, &self.fallback) {
                    Ok(model) => {
                        let model = Arc::new(model);
                        *guard = Some(model.clone());
                        model
                    }
                    Err(e) => {
                        tracing::error!(model = %slot.entry.name, error = %e, "model load failed");
                        return Err(RequestError::Unavailable(e.to_string()));
                    }
                },
            }
        };
        if !slot.pinned {
            self.touch_and_evict(ix);
        }
        Ok(model)
    }

    /// Marks `ix` most recently used and unloads the least recently used models beyond the
    /// cap. Runs with no slot lock held, so two slots' locks are never taken together.
    fn touch_and_evict(&self, ix: usize) {
        let evicted: Vec<usize> = {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            recent.retain(|&i| i != ix);
            recent.push_back(ix);
            let over = recent.len().saturating_sub(self.max_loaded);
            recent.drain(..over).collect()
        };
        for i in evicted {
            let slot = &self.slots[i];
            *slot.loaded.lock().unwrap_or_else(|e| e.into_inner()) = None;
            tracing::info!(model = %slot.entry.name, max_loaded = self.max_loaded, "model unloaded (least recently used)");
        }
    }

    /// Parses, runs and encodes one request body; logs one line per request.
    pub fn handle(&self, body: &[u8]) -> Result<Value, RequestError> {
        self.logged(|| InferenceRequest::from_slice(body).and_then(|r| self.infer(&r)))
    }

    /// The same for a request that arrived already parsed (a direct invocation).
    pub fn handle_value(&self, request: Value) -> Result<Value, RequestError> {
        self.logged(|| InferenceRequest::from_value(request).and_then(|r| self.infer(&r)))
    }

    fn logged(
        &self,
        run: impl FnOnce() -> Result<InferenceResponse, RequestError>,
    ) -> Result<Value, RequestError> {
        let started = Instant::now();
        let result = run();
        let duration_ms = ms(started.elapsed());
        match &result {
            Ok(resp) => tracing::info!(model = %resp.model, duration_ms, status = 200, "request"),
            Err(RequestError::Internal(detail)) => {
                tracing::error!(duration_ms, status = 500, error = %detail, "request failed")
            }
            Err(e) => {
                tracing::info!(duration_ms, status = e.status(), error = %e, "request rejected")
            }
        }
        result.map(|r| r.to_json())
    }

    /// What this function serves: names, versions, signatures and labels.
    pub fn describe(&self) -> Value {
        let models: Vec<Value> = self
            .slots
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.entry.name,
                    "model_version": s.entry.sha256.chars().take(12).collect::<String>(),
                    "inputs": s.entry.inputs,
                    "outputs": s.entry.outputs,
                    "labels": s.entry.labels,
                })
            })
            .collect();
        serde_json::json!({"default_model": self.default_model, "models": models})
    }

    /// Runs one decoded request.
    pub fn infer(&self, req: &InferenceRequest) -> Result<InferenceResponse, RequestError> {
        let ix = self.resolve(req.model.as_deref())?;
        let entry = &self.slots[ix].entry;
        if let Some(wanted) = &req.return_outputs {
            if let Some(bad) = wanted
                .iter()
                .find(|w| !entry.outputs.iter().any(|o| &o.name == *w))
            {
                return Err(RequestError::bad(format!(
                    "field \"return\": model {:?} has no output {bad:?}; its outputs are {}",
                    entry.name,
                    names(&entry.outputs)
                )));
            }
        }
        if let RequestInputs::Text(texts) = &req.inputs {
            return self.infer_text(ix, texts);
        }
        let inputs = build_inputs(entry, &req.inputs)?;
        let model = self.loaded(ix)?;
        let outputs = model
            .plan
            .run(inputs)
            .map_err(|e| RequestError::Internal(format!("model {:?}: {e:#}", entry.name)))?;

        let labels = predicted_labels(entry, &outputs);
        let mut encoded = Vec::with_capacity(outputs.len());
        for (spec, value) in entry.outputs.iter().zip(outputs.iter()) {
            if let Some(wanted) = &req.return_outputs {
                if !wanted.contains(&spec.name) {
                    continue;
                }
            }
            let json = tensor_to_json(value)
                .map_err(|e| RequestError::Internal(format!("output {:?}: {e}", spec.name)))?;
            encoded.push((spec.name.clone(), json));
        }
        Ok(InferenceResponse {
            model: entry.name.clone(),
            model_version: entry.sha256.chars().take(12).collect(),
            source: model.source,
            outputs: encoded,
            labels,
            text: None,
        })
    }

    /// Tokenize, run once for the whole batch, pool or classify.
    fn infer_text(&self, ix: usize, texts: &[String]) -> Result<InferenceResponse, RequestError> {
        let entry = &self.slots[ix].entry;
        if entry.pipeline.is_none() {
            return Err(RequestError::bad(format!(
                "field \"text\": model {:?} was not packed with a tokenizer; send \"inputs\" or \"features\"",
                entry.name
            )));
        }
        let model = self.loaded(ix)?;
        let text = model.text.as_ref().ok_or_else(|| {
            RequestError::Internal(format!("model {:?}: text pipeline missing", entry.name))
        })?;
        let encoded = text.encode(texts)?;
        let outputs = model
            .plan
            .run(encoded.inputs.clone())
            .map_err(|e| RequestError::Internal(format!("model {:?}: {e:#}", entry.name)))?;
        let answer = text.answer(&encoded, &outputs, &entry.labels)?;
        Ok(InferenceResponse {
            model: entry.name.clone(),
            model_version: entry.sha256.chars().take(12).collect(),
            source: model.source,
            outputs: Vec::new(),
            labels: None,
            text: Some(answer),
        })
    }
}

fn names(specs: &[model_lock::TensorSpec]) -> String {
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
            if let Some(unknown) = map
                .keys()
                .find(|k| !entry.inputs.iter().any(|s| &s.name == *k))
            {
                return Err(RequestError::bad(format!(
                    "field \"inputs\": model {:?} has no input {unknown:?}; its inputs are {}",
                    entry.name,
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

/// Class names for classifiers: from an integer label output of rank 1 when the model has
/// one (scikit-learn exports do), otherwise the argmax of the first float output whose last
/// axis has one entry per label.
fn predicted_labels(entry: &ModelEntry, outputs: &[TValue]) -> Option<Vec<String>> {
    if entry.labels.is_empty() {
        return None;
    }
    let n = entry.labels.len();
    let pick = |ix: usize| entry.labels.get(ix).cloned();
    for (spec, value) in entry.outputs.iter().zip(outputs) {
        if matches!(spec.dtype, DType::I64 | DType::I32) && value.rank() == 1 {
            let classes = value.cast_to::<i64>().ok()?;
            let classes = slice_of::<i64>(&classes).ok()?;
            return classes
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
            return scores
                .chunks(n)
                .map(|row| {
                    let best =
                        row.iter()
                            .enumerate()
                            .fold(0, |best, (i, v)| if *v > row[best] { i } else { best });
                    pick(best)
                })
                .collect();
        }
    }
    None
}
