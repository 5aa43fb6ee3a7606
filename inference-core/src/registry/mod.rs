//! The model registry: which models this function serves and where each one is (its slot),
//! loading them eagerly at init or on first use (`load.rs`), the LRU of models loaded on
//! demand (`lru.rs`), and answering requests (`answer.rs`).

mod answer;
mod load;
mod lru;
mod record;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use model_lock::{ModelEntry, PackedModels};
use serde_json::Value;

use crate::error::{InitError, RequestError};
use crate::fallback::FallbackConfig;
use crate::loader::LoadedModel;
pub use crate::plans::PlanBuild;
use crate::plans::PlanCacheLimits;
use crate::request::InferenceRequest;
use crate::response::InferenceResponse;
use crate::settings::{LoadMode, Settings};

use load::ms;
pub use record::{Answered, ModelLoad, RequestRecord};

/// Time kept back from an invocation's deadline for running the model and answering once a
/// model loaded on first use is in.
const ANSWER_MARGIN: std::time::Duration = std::time::Duration::from_millis(500);
use lru::Recent;

/// A model's bytes: compiled into the binary, or owned (pack-time checks, tests).
#[derive(Debug, Clone)]
pub enum ModelBytes {
    Embedded(&'static [u8]),
    Owned(Arc<[u8]>),
}

impl ModelBytes {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            ModelBytes::Embedded(bytes) => bytes,
            ModelBytes::Owned(bytes) => bytes,
        }
    }
}

impl From<Vec<u8>> for ModelBytes {
    fn from(bytes: Vec<u8>) -> Self {
        ModelBytes::Owned(bytes.into())
    }
}

/// One model as the registry receives it: its lock entry (signature, the build's hash) and
/// the copy to verify against that hash. Without bytes (`embed = false`) it is loaded from
/// the fallback stores on first use.
#[derive(Debug, Clone)]
pub struct PackedModel {
    pub entry: ModelEntry,
    pub bytes: Option<ModelBytes>,
    /// The packed tokenizer of a text model, checked against the entry's tokenizer hash.
    pub tokenizer: Option<ModelBytes>,
}

struct Slot {
    model: PackedModel,
    loaded: Mutex<Option<Arc<LoadedModel>>>,
    /// Loaded at init and kept: never evicted.
    pinned: bool,
}

pub struct Registry {
    default_model: Option<String>,
    slots: Vec<Slot>,
    fallback: FallbackConfig,
    recent: Mutex<Recent>,
    /// The function's memory in bytes, when Lambda says it.
    memory_limit: Option<u64>,
    /// Loads not yet taken by [`Registry::take_loads`].
    loads: Mutex<Vec<ModelLoad>>,
    /// What each model's plans built on first use may hold.
    plan_cache: PlanCacheLimits,
    /// Plans built on first use not yet taken by [`Registry::take_plan_builds`].
    plan_builds: Mutex<Vec<PlanBuild>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("default_model", &self.default_model)
            .field("models", &self.model_names())
            .finish()
    }
}

impl Registry {
    /// The registry of what the build embedded: each model's lock entry is the JSON the build
    /// compiled in, and its hash must be the one the build recorded beside it.
    pub fn embedded(packed: &PackedModels, settings: &Settings) -> Result<Self, InitError> {
        let mut models = Vec::with_capacity(packed.models.len());
        for embedded in packed.models {
            let bad_entry = |message: String| InitError::BadEntry {
                model: embedded.name.to_string(),
                message,
            };
            let entry =
                ModelEntry::from_json(embedded.entry_json).map_err(|e| bad_entry(e.to_string()))?;
            if entry.name != embedded.name || !entry.sha256.eq_ignore_ascii_case(embedded.sha256) {
                return Err(bad_entry(format!(
                    "the entry names {:?} with sha256 {}, the build embedded {:?} with sha256 {}",
                    entry.name, entry.sha256, embedded.name, embedded.sha256
                )));
            }
            models.push(PackedModel {
                entry,
                bytes: embedded.bytes.map(ModelBytes::Embedded),
                tokenizer: embedded.tokenizer.map(ModelBytes::Embedded),
            });
        }
        Self::new(models, packed.default_model, settings)
    }

    /// Builds the registry. In eager mode every model with bytes, and every image model when
    /// the image's directory is set, is verified and loaded here (through the fallback stores
    /// if its copy is corrupt or missing), and any failure is an init error. Models without
    /// bytes (`embed = false`) are always loaded on first use.
    pub fn new(
        models: Vec<PackedModel>,
        default_model: Option<&str>,
        settings: &Settings,
    ) -> Result<Self, InitError> {
        let mut slots: Vec<Slot> = models
            .into_iter()
            .map(|model| Slot {
                model,
                loaded: Mutex::new(None),
                pinned: false,
            })
            .collect();
        slots.sort_by(|a, b| a.model.entry.name.cmp(&b.model.entry.name));
        let default_model = match default_model {
            Some(name) => {
                if !slots.iter().any(|s| s.model.entry.name == name) {
                    return Err(InitError::BadDefault(name.to_string()));
                }
                Some(name.to_string())
            }
            None if slots.len() == 1 => Some(slots[0].model.entry.name.clone()),
            None => None,
        };
        let mut loads = Vec::new();
        if settings.load == LoadMode::Eager {
            let image = settings.fallback.image_dir.is_some();
            let at_init = |m: &PackedModel| {
                m.bytes.is_some() || (image && m.entry.artifact == model_lock::Artifact::Image)
            };
            for slot in slots.iter_mut().filter(|s| at_init(&s.model)) {
                let TimedLoad { model, load } =
                    timed_load(&slot.model, &settings.fallback, settings.plan_cache)?;
                slot.loaded = Mutex::new(Some(Arc::new(model)));
                slot.pinned = true;
                loads.push(load);
            }
        }
        Ok(Registry {
            default_model,
            slots,
            fallback: settings.fallback.clone(),
            recent: Mutex::new(Recent::new(settings.max_loaded)),
            memory_limit: settings.memory_mb.map(|mb| mb.saturating_mul(1 << 20)),
            loads: Mutex::new(loads),
            plan_cache: settings.plan_cache,
            plan_builds: Mutex::new(Vec::new()),
        })
    }

    /// The model loads since the last call (all of init's on the first), oldest first.
    pub fn take_loads(&self) -> Vec<ModelLoad> {
        std::mem::take(&mut *self.loads.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The plans built on first use since the last call, oldest first.
    pub fn take_plan_builds(&self) -> Vec<PlanBuild> {
        std::mem::take(&mut *self.plan_builds.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Notes a plan a request built, for [`Registry::take_plan_builds`].
    fn built_plan(&self, build: Option<PlanBuild>) {
        if let Some(build) = build {
            self.plan_builds
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(build);
        }
    }

    /// The model a request asks for (the default when it names none), read before the rest
    /// of the request so a malformed one is still counted against it; `None` when this
    /// registry does not serve it.
    fn asked_model(&self, request: &Value) -> Option<String> {
        let name = match request.get("model") {
            None => self.default_model.as_deref()?,
            Some(Value::String(name)) => name.as_str(),
            Some(_) => return None,
        };
        self.index(name).map(|_| name.to_string())
    }

    pub fn model_names(&self) -> Vec<String> {
        self.slots
            .iter()
            .map(|s| s.model.entry.name.clone())
            .collect()
    }

    pub fn default_model(&self) -> Option<&str> {
        self.default_model.as_deref()
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.model.entry.name == name)
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

    /// The loaded model in slot `ix`, loading it now if this is its first use. A load now
    /// must end before `deadline` (the invocation's, less time to answer): the fallback
    /// budget is cut to what is left, so a slow store gives a 503, not a timeout.
    fn loaded(
        &self,
        ix: usize,
        deadline: Option<Instant>,
    ) -> Result<Arc<LoadedModel>, RequestError> {
        let slot = &self.slots[ix];
        let model = {
            let mut guard = slot.loaded.lock().unwrap_or_else(|e| e.into_inner());
            match guard.as_ref() {
                Some(model) => model.clone(),
                None => {
                    let (fallback, cut) = self.fallback_until(deadline);
                    match timed_load(&slot.model, &fallback, self.plan_cache) {
                        Ok(TimedLoad { model, load }) => {
                            let model = Arc::new(model);
                            *guard = Some(model.clone());
                            self.loads
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(load);
                            model
                        }
                        Err(e) => {
                            tracing::error!(model = %slot.model.entry.name, error = %e, "model load failed");
                            let why = if cut {
                                format!("{e} (the fallback budget was cut to the invocation's remaining time)")
                            } else {
                                e.to_string()
                            };
                            return Err(RequestError::Unavailable(why));
                        }
                    }
                }
            }
        };
        if !slot.pinned {
            self.touch_and_evict(ix);
        }
        Ok(model)
    }

    /// The fallback settings for a load that must end by `deadline`, and whether the
    /// budget had to be cut for it.
    fn fallback_until(&self, deadline: Option<Instant>) -> (FallbackConfig, bool) {
        let mut fallback = self.fallback.clone();
        let Some(deadline) = deadline else {
            return (fallback, false);
        };
        let left = deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(ANSWER_MARGIN);
        let cut = left < fallback.budget;
        fallback.budget = fallback.budget.min(left);
        (fallback, cut)
    }

    /// Marks `ix` most recently used and unloads the least recently used models beyond the
    /// cap. Runs with no slot lock held, so two slots' locks are never taken together.
    fn touch_and_evict(&self, ix: usize) {
        let (evicted, cap) = {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            (recent.touch(ix), recent.cap())
        };
        for i in evicted {
            let slot = &self.slots[i];
            *slot.loaded.lock().unwrap_or_else(|e| e.into_inner()) = None;
            tracing::info!(model = %slot.model.entry.name, max_loaded = cap, "model unloaded (least recently used)");
        }
    }

    /// Parses, runs and encodes one request body; logs one line per request.
    pub fn handle(&self, body: &[u8]) -> Result<Value, RequestError> {
        self.handle_until(body, None).result
    }

    /// [`Registry::handle`] for a request that must be answered by `deadline` (a Lambda
    /// invocation's): a model loaded on first use gets only the time left. The answer comes
    /// with the request's record, for metrics.
    pub fn handle_until(&self, body: &[u8], deadline: Option<Instant>) -> Answered {
        self.answered(|record| {
            let request = InferenceRequest::json(body)?;
            record.model = self.asked_model(&request);
            self.infer(&InferenceRequest::from_value(request)?, deadline)
        })
    }

    /// The same for a request that arrived already parsed (a direct invocation).
    pub fn handle_value(&self, request: Value) -> Result<Value, RequestError> {
        self.handle_value_until(request, None).result
    }

    /// [`Registry::handle_value`] with a deadline, as [`Registry::handle_until`].
    pub fn handle_value_until(&self, request: Value, deadline: Option<Instant>) -> Answered {
        self.answered(|record| {
            record.model = self.asked_model(&request);
            self.infer(&InferenceRequest::from_value(request)?, deadline)
        })
    }

    /// Runs one request (`run` notes which model it asks for in the record), logs its line
    /// and completes its record.
    fn answered(
        &self,
        run: impl FnOnce(&mut RequestRecord) -> Result<InferenceResponse, RequestError>,
    ) -> Answered {
        let started = Instant::now();
        let mut record = RequestRecord::rejected(0, Default::default());
        // A panic in tract, tokenizers or our code answers this request with a 500 and
        // leaves the function serving: the slot locks recover from poisoning.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&mut record)))
            .unwrap_or_else(|payload| Err(RequestError::Internal(panic_message(&*payload))));
        record.duration = started.elapsed();
        let duration_ms = ms(record.duration);
        match &result {
            Ok(resp) => {
                record.status = 200;
                record.source = Some(resp.source);
                record.rows = resp.rows;
                tracing::info!(model = %resp.model, duration_ms, status = 200, "request")
            }
            Err(e @ RequestError::Internal(_)) => {
                record.status = e.status();
                tracing::error!(duration_ms, status = 500, error = %e.log_message(), "request failed")
            }
            Err(e) => {
                record.status = e.status();
                tracing::info!(duration_ms, status = e.status(), error = %e.log_message(), "request rejected")
            }
        }
        Answered {
            result: result.map(|r| r.to_json()),
            record,
        }
    }

    /// What this function serves: names, versions, signatures and labels.
    pub fn describe(&self) -> Value {
        let models: Vec<Value> = self
            .slots
            .iter()
            .map(|s| {
                let entry = &s.model.entry;
                serde_json::json!({
                    "name": entry.name,
                    "model_version": entry.version(),
                    "inputs": entry.inputs,
                    "outputs": entry.outputs,
                    "labels": entry.labels,
                })
            })
            .collect();
        serde_json::json!({"default_model": self.default_model, "models": models})
    }
}

/// A model just loaded, and the load's record.
struct TimedLoad {
    model: LoadedModel,
    load: ModelLoad,
}

/// Loads one model and records how long it took and where its bytes came from.
fn timed_load(
    model: &PackedModel,
    fallback: &FallbackConfig,
    plans: PlanCacheLimits,
) -> Result<TimedLoad, InitError> {
    let started = Instant::now();
    let loaded = load::load_model(model, fallback, plans)?;
    let load = ModelLoad {
        model: model.entry.name.clone(),
        source: loaded.source,
        duration: started.elapsed(),
    };
    Ok(TimedLoad {
        model: loaded,
        load,
    })
}

/// What a caught panic said.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let said = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    format!("panic while answering: {said}")
}
