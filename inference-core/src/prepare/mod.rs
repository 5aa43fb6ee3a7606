//! Pack-time preparation: what `cargo xtask pack-models` does to a model before anything is
//! written. [`prepare`] decodes the source once, removes a trailing ZipMap, quantizes to int8
//! when asked and reads the served signature; [`check`] loads the packed bytes exactly as the
//! function will and answers every sample request; [`MaxDrift`] gates an int8 model's
//! [`Drift`] from the original; [`compile`] writes the compiled form and
//! [`same_answers`] proves it answers as the ONNX did; [`int8_dynamic`] writes it with the
//! matrix products on int8, within `max_drift`; [`time_plans`] proves and times the
//! concrete plans a model could run on, and [`fastest`] picks one. xtask only fetches,
//! orchestrates and writes.

mod check;
mod compile;
mod constants;
mod external_data;
mod int8_dynamic;
pub(crate) mod int8_weights;
mod memory;
mod plan_choice;
mod signature;
mod string_labels;
mod zipmap;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use prost::Message as _;
use serde::Deserialize;
use tract_onnx::pb::ModelProto;

pub use crate::compare::Drift;
pub use check::{check, sample_requests, sample_requests_with, Checked};
pub use compile::{compile, compiled_entry, load_time};
pub use external_data::MAX_INLINED_BYTES;
pub use int8_dynamic::{int8_dynamic, DynamicInt8};
pub use memory::{memory_cost, PeakMeter};
pub use plan_choice::{
    candidates, default_buckets, fastest, time_plans, timing_requests, PlanTiming,
};
pub use signature::{inspect, InputOverride, Signature, Typing};

use crate::error::{InitError, RequestError};

/// `quantize` in the manifest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantize {
    #[default]
    None,
    /// Weight-only int8 in the packed file, f32 again at load.
    Int8,
    /// int8 weights and int8 matrix products, activations quantized per row at run time
    /// ([`int8_dynamic`]); only in the compiled form.
    #[serde(rename = "int8-dynamic")]
    Int8Dynamic,
}

/// `max_drift` in the manifest: how far an int8 model's outputs may be from the original's on
/// the sample request.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaxDrift {
    /// Lowest cosine similarity allowed between original and packed outputs.
    pub cosine: f64,
    /// Largest absolute difference allowed in any output value.
    pub max_abs: f64,
}

impl Default for MaxDrift {
    fn default() -> Self {
        MaxDrift {
            cosine: 0.99,
            max_abs: 0.1,
        }
    }
}

impl MaxDrift {
    /// `Ok` when `drift` is within these bounds (NaN never is).
    pub fn allows(&self, drift: Drift) -> Result<(), PrepareError> {
        if drift.cosine >= self.cosine && drift.max_abs <= self.max_abs {
            Ok(())
        } else {
            Err(PrepareError::Drift {
                drift,
                limit: *self,
            })
        }
    }
}

/// Why a model cannot be packed; the message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("cannot decode ONNX: {0}")]
    Decode(String),
    #[error("{0}")]
    ExternalData(String),
    #[error(transparent)]
    Quantize(#[from] int8_weights::QuantizeError),
    /// int8-dynamic found nothing it may run on int8 within the drift allowed.
    #[error("{0}")]
    Int8Dynamic(String),
    #[error("{0}")]
    Signature(String),
    #[error("the packed model does not load: {0}")]
    Load(InitError),
    #[error("the packed model does not answer its sample request: {0}")]
    Sample(RequestError),
    #[error(
        "int8 drift too large: cosine {:.5} (min {}), max abs error {:.5} (max {}). Raise max_drift or use quantize = \"none\"",
        drift.cosine, limit.cosine, drift.max_abs, limit.max_abs
    )]
    Drift { drift: Drift, limit: MaxDrift },
    #[error("cannot compile the model: {0}")]
    Compile(String),
    #[error(
        "the compiled form answers the sample request differently from the ONNX model (cosine {:.7}, max abs difference {:.2e}); set compile = \"never\" for this model and report it",
        drift.cosine, drift.max_abs
    )]
    CompiledDiffers { drift: Drift },
    #[error(
        "with plans = {plans} the model answers differently from its symbolic plan (cosine {:.7}, max abs difference {:.2e}, allowed {} / {:.0e}); set plans = \"symbolic\" for this model and report it",
        drift.cosine, drift.max_abs, PLANS_MAX_DRIFT.cosine, PLANS_MAX_DRIFT.max_abs
    )]
    PlansDiffer { plans: String, drift: Drift },
}

/// How close the compiled form's answers must be to the ONNX model's: the same graph, so
/// equal up to float rounding where codegen fuses ops differently.
pub const COMPILED_MAX_DRIFT: MaxDrift = MaxDrift {
    cosine: 0.999_999,
    max_abs: 1e-5,
};

/// `Ok` when the compiled form's answers to the sample requests are the ONNX model's.
pub fn same_answers(
    onnx: &[serde_json::Value],
    compiled: &[serde_json::Value],
) -> Result<Drift, PrepareError> {
    within_drift(onnx, compiled, COMPILED_MAX_DRIFT)
        .map_err(|drift| PrepareError::CompiledDiffers { drift })
}

/// How close a concrete plan's answers must be to the symbolic plan's. The graph is the
/// same, but fixed shapes let tract pick other kernels (a direct convolution instead of
/// im2col, other tile sizes), which sum in another order: over a conv net's depth that
/// rounding reaches ~1e-5 on outputs in [0, 1] (PP-OCRv4 det, 1.25e-5 measured), more than
/// [`COMPILED_MAX_DRIFT`] allows for the one-for-one compiled form, and still three orders
/// of magnitude inside int8's default `max_drift`.
pub const PLANS_MAX_DRIFT: MaxDrift = MaxDrift {
    cosine: 0.999_99,
    max_abs: 1e-4,
};

/// The worst drift between two answer lists, or the first one past `limit` (a list cut
/// short counts as infinitely far).
fn within_drift(
    want: &[serde_json::Value],
    got: &[serde_json::Value],
    limit: MaxDrift,
) -> Result<Drift, Drift> {
    let mut worst = Drift {
        cosine: 1.0,
        max_abs: 0.0,
    };
    if want.len() != got.len() {
        return Err(Drift {
            cosine: 0.0,
            max_abs: f64::INFINITY,
        });
    }
    for (a, b) in want.iter().zip(got) {
        let drift = Drift::between(a, b);
        if limit.allows(drift).is_err() {
            return Err(drift);
        }
        worst = Drift {
            cosine: worst.cosine.min(drift.cosine),
            max_abs: worst.max_abs.max(drift.max_abs),
        };
    }
    Ok(worst)
}

/// A model made ready to pack.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// What goes into the packed file (and the binary).
    pub packed: Vec<u8>,
    /// The model as served before quantization (ZipMap removed): the drift reference. The
    /// same bytes as `packed` when nothing was quantized.
    pub original: Vec<u8>,
    /// Outputs whose trailing ZipMap was removed: they serve class probabilities as a
    /// `[rows, classes]` tensor, columns in class-label order.
    pub zipmaps_removed: Vec<String>,
    /// String class labels rewritten to indices, and the outputs to answer with the names.
    pub class_labels: Option<model_lock::ClassLabels>,
    /// For each string input, a category the model knows (the first of the encoder it
    /// reaches): what a generated sample request sends.
    pub string_examples: BTreeMap<String, String>,
    pub signature: Signature,
}

/// The external data files (`location`s) an ONNX model's tensors point at; empty for a
/// self-contained model.
pub fn external_data_locations(source: &[u8]) -> Result<Vec<String>, PrepareError> {
    let proto = ModelProto::decode(source).map_err(|e| PrepareError::Decode(e.to_string()))?;
    Ok(external_data::external_data_locations(&proto))
}

/// The names of an ONNX model's inputs (initializers listed as inputs left out).
pub fn input_names(source: &[u8]) -> Result<Vec<String>, PrepareError> {
    let proto = ModelProto::decode(source).map_err(|e| PrepareError::Decode(e.to_string()))?;
    let Some(graph) = proto.graph else {
        return Ok(Vec::new());
    };
    Ok(graph
        .input
        .iter()
        .filter(|i| !graph.initializer.iter().any(|t| t.name == i.name))
        .map(|i| i.name.clone())
        .collect())
}

/// The symbol a text model's bucket plans pad (its sequence dim), if it has one.
pub fn bucketed_symbol(entry: &model_lock::ModelEntry) -> Option<String> {
    crate::plans::sequence_dim(entry).map(|(_, _, name)| name)
}

/// What the manifest says of a model's inputs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputSettings {
    /// Shapes fixed or dims named (`[model.inputs.NAME] shape = …`).
    pub overrides: Vec<InputOverride>,
    /// Inputs fixed to a value and packed into the graph (`[model.inputs.NAME] value = …`).
    pub constants: BTreeMap<String, serde_json::Value>,
    /// Concrete shapes to prove at pack time (`shapes = [{ NAME = [dims] }, …]`).
    pub shapes: Vec<BTreeMap<String, Vec<u64>>>,
}

/// [`prepare_with_external_data`] for a self-contained model with shape overrides only.
pub fn prepare(
    source: &[u8],
    quantize: Quantize,
    overrides: &[InputOverride],
) -> Result<Prepared, PrepareError> {
    let inputs = InputSettings {
        overrides: overrides.to_vec(),
        ..Default::default()
    };
    prepare_with_external_data(source, &BTreeMap::new(), quantize, &inputs)
}

/// Decodes `source` once, inlines its external data (`external`: each side file by its
/// `location`), packs the inputs fixed to a value into the graph, strips a trailing ZipMap
/// (lists of dictionaries cannot be served as a tensor), rewrites string class labels to
/// indices, quantizes when asked and reads the signature of the packed model.
pub fn prepare_with_external_data(
    source: &[u8],
    external: &BTreeMap<String, Vec<u8>>,
    quantize: Quantize,
    inputs: &InputSettings,
) -> Result<Prepared, PrepareError> {
    let inlined = external
        .values()
        .fold(source.len() as u64, |n, f| n.saturating_add(f.len() as u64));
    if inlined > MAX_INLINED_BYTES {
        return Err(PrepareError::ExternalData(external_data::too_big(inlined)));
    }
    let mut proto = ModelProto::decode(source).map_err(|e| PrepareError::Decode(e.to_string()))?;
    let locations = external_data::external_data_locations(&proto);
    if let Some(unused) = external.keys().find(|k| !locations.contains(k)) {
        return Err(PrepareError::ExternalData(format!(
            "external data {unused:?} is not referenced by the model (it references {locations:?})"
        )));
    }
    if !locations.is_empty() {
        external_data::inline_external_data(&mut proto, external)
            .map_err(PrepareError::ExternalData)?;
    }
    constants::fix_inputs(&mut proto, &inputs.constants).map_err(PrepareError::Signature)?;
    let string_examples = string_examples(&proto);
    let zipmaps_removed = zipmap::strip_zipmap(&mut proto);
    let class_labels =
        string_labels::string_labels_to_indices(&mut proto).map_err(PrepareError::Signature)?;
    let original = if zipmaps_removed.is_empty()
        && class_labels.is_none()
        && locations.is_empty()
        && inputs.constants.is_empty()
    {
        source.to_vec()
    } else {
        proto.encode_to_vec()
    };
    let packed = match quantize {
        Quantize::None => original.clone(),
        // int8-dynamic starts from the same file: its compiled form keeps the embedding
        // tables int8 and requantizes the product weights exactly (same scheme).
        Quantize::Int8 | Quantize::Int8Dynamic => {
            int8_weights::quantize(&mut proto, crate::int8::DEFAULT_MIN_ELEMENTS)?;
            proto.encode_to_vec()
        }
    };
    let signature = signature::signature_of(proto, &inputs.overrides, &inputs.shapes)
        .map_err(PrepareError::Signature)?;
    Ok(Prepared {
        packed,
        original,
        zipmaps_removed,
        class_labels,
        string_examples,
        signature,
    })
}

/// For each string input, the first category of the first encoder it reaches (through
/// column selection, reshapes and concatenations), so a generated request is one the model
/// accepts even when it refuses unknown categories.
fn string_examples(model: &ModelProto) -> BTreeMap<String, String> {
    let Some(graph) = model.graph.as_ref() else {
        return BTreeMap::new();
    };
    let string = tract_onnx::pb::tensor_proto::DataType::String as i32;
    let mut examples = BTreeMap::new();
    for input in &graph.input {
        let is_string = matches!(
            input.r#type.as_ref().and_then(|t| t.value.as_ref()),
            Some(tract_onnx::pb::type_proto::Value::TensorType(t)) if t.elem_type == string
        );
        if !is_string {
            continue;
        }
        let mut reached = vec![input.name.clone()];
        let mut found = None;
        // Breadth first, a few steps: the encoder is near the input in every export.
        for _ in 0..8 {
            let mut next = Vec::new();
            for node in graph
                .node
                .iter()
                .filter(|n| n.input.iter().any(|i| reached.contains(i)))
            {
                let first = node
                    .attribute
                    .iter()
                    .find(|a| matches!(a.name.as_str(), "cats_strings" | "keys_strings"))
                    .and_then(|a| a.strings.first());
                if let Some(first) = first {
                    found = Some(String::from_utf8_lossy(first).into_owned());
                    break;
                }
                next.extend(node.output.iter().cloned());
            }
            if found.is_some() || next.is_empty() {
                break;
            }
            reached = next;
        }
        if let Some(found) = found {
            examples.insert(input.name.clone(), found);
        }
    }
    examples
}
