//! The model registry: which models this function serves, loading them (eagerly at init or
//! on first use), and answering requests.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use model_lock::{DType, EmbeddedModel, ModelEntry, PackedModels};
use serde_json::Value;
use tract_onnx::prelude::*;

use crate::checksum;
use crate::error::{InitError, RequestError};
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
}

pub struct Registry {
    default_model: Option<String>,
    slots: Vec<Slot>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("default_model", &self.default_model)
            .field("models", &self.model_names())
            .finish()
    }
}

/// Verify and load one model from the bytes compiled into the binary.
fn load_embedded(embedded: &EmbeddedModel, entry: &ModelEntry) -> Result<LoadedModel, InitError> {
    // Seam for the EFS/S3 fallback: a missing or corrupt embedded copy is where it starts.
    let bytes = embedded.bytes.ok_or_else(|| InitError::NotEmbedded {
        model: entry.name.clone(),
    })?;
    let started = Instant::now();
    checksum::verify(bytes, embedded.sha256).map_err(|actual| InitError::ChecksumMismatch {
        model: entry.name.clone(),
        expected: embedded.sha256.to_string(),
        actual,
    })?;
    let verify = started.elapsed();
    let (plan, decode, optimize) =
        loader::load(bytes, entry).map_err(|message| InitError::Load {
            model: entry.name.clone(),
            message,
        })?;
    let timings = PhaseTimings {
        verify,
        decode,
        optimize,
    };
    tracing::info!(
        model = %entry.name,
        source = "embedded",
        bytes = bytes.len(),
        verify_ms = ms(timings.verify),
        decode_ms = ms(timings.decode),
        optimize_ms = ms(timings.optimize),
        "model loaded"
    );
    Ok(LoadedModel {
        entry: entry.clone(),
        plan,
        source: "embedded",
        timings,
    })
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Registry {
    /// Builds the registry from what the build embedded. In eager mode every model is
    /// verified and loaded here, and any failure is an init error.
    pub fn new(packed: &PackedModels, mode: LoadMode) -> Result<Self, InitError> {
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
        let registry = Registry {
            default_model,
            slots,
        };
        if mode == LoadMode::Eager {
            for slot in &registry.slots {
                let model = load_embedded(&slot.embedded, &slot.entry)?;
                *slot.loaded.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(model));
            }
        }
        Ok(registry)
    }

    pub fn model_names(&self) -> Vec<String> {
        self.slots.iter().map(|s| s.entry.name.clone()).collect()
    }

    pub fn default_model(&self) -> Option<&str> {
        self.default_model.as_deref()
    }

    pub fn entry(&self, name: &str) -> Option<&ModelEntry> {
        self.slot(name).map(|s| &s.entry)
    }

    fn slot(&self, name: &str) -> Option<&Slot> {
        self.slots.iter().find(|s| s.entry.name == name)
    }

    fn resolve(&self, requested: Option<&str>) -> Result<&Slot, RequestError> {
        let name = match requested {
            Some(name) => name,
            None => self.default_model.as_deref().ok_or_else(|| {
                RequestError::bad(format!(
                    "field \"model\" is required: this function serves several models ({}) and none is the default",
                    self.model_names().join(", ")
                ))
            })?,
        };
        self.slot(name).ok_or_else(|| RequestError::UnknownModel {
            name: name.to_string(),
            available: self.model_names(),
        })
    }

    /// The loaded model, loading it now if this is its first use.
    pub fn get(&self, name: &str) -> Result<Arc<LoadedModel>, RequestError> {
        let slot = self.resolve(Some(name))?;
        self.loaded(slot)
    }

    fn loaded(&self, slot: &Slot) -> Result<Arc<LoadedModel>, RequestError> {
        let mut guard = slot.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(model) = guard.as_ref() {
            return Ok(model.clone());
        }
        match load_embedded(&slot.embedded, &slot.entry) {
            Ok(model) => {
                let model = Arc::new(model);
                *guard = Some(model.clone());
                Ok(model)
            }
            Err(e) => {
                tracing::error!(model = %slot.entry.name, error = %e, "model load failed");
                Err(RequestError::Unavailable(e.to_string()))
            }
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
        let slot = self.resolve(req.model.as_deref())?;
        let entry = &slot.entry;
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
        let inputs = build_inputs(entry, &req.inputs)?;
        let model = self.loaded(slot)?;
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
