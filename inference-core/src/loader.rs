//! Turning packed ONNX bytes into an optimized tract plan. The pieces are shared with
//! pack-time signature inspection (`prepare/signature.rs`), so both read a graph alike.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use model_lock::{DType, Dim, ModelEntry, ModelFormat, ShapeSource, TensorSpec};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::InferenceFact;

use crate::int8::Folded;
use crate::lookup::{index_limits, IndexLimit};
use crate::plans::{PlanCacheLimits, Plans, Source};

pub type Plan = Arc<TypedRunnableModel>;

/// Why packed bytes do not load: the step that failed, then tract's own words.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    #[error("cannot decode ONNX: {0}")]
    Decode(String),
    #[error("int8 weights: {0}")]
    Int8(String),
    #[error(transparent)]
    Compiled(#[from] crate::nnef::NnefError),
    /// The graph's inputs or outputs are not the lock's signature.
    #[error("{0}")]
    Signature(String),
    #[error("cannot {step}: {detail}")]
    Tract { step: &'static str, detail: String },
    #[error("{0}")]
    Plans(String),
}

impl LoadError {
    fn tract(step: &'static str) -> impl FnOnce(TractError) -> LoadError {
        move |e| LoadError::Tract {
            step,
            detail: format!("{e:#}"),
        }
    }
}

/// Pack time reports load errors as text beside its own.
impl From<LoadError> for String {
    fn from(e: LoadError) -> String {
        e.to_string()
    }
}

/// How long each init phase took, for the init log line and the benchmarks. For an embedded
/// model `verify` and `tokenizer` run on a second thread, beside `decode` and `optimize`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PhaseTimings {
    pub verify: Duration,
    /// Bytes to a typed graph: ONNX decoded and typed, or the compiled form read.
    pub decode: Duration,
    /// Declutter: all of it for ONNX, a clean-up pass for the compiled form.
    pub declutter: Duration,
    /// Codegen: kernels chosen, weights packed, the plan built.
    pub optimize: Duration,
    pub tokenizer: Duration,
}

/// A model ready to run.
#[derive(Debug)]
pub struct LoadedModel {
    pub(crate) plans: Plans,
    /// Which store the bytes came from (`embedded`, `efs` or `s3`).
    pub source: &'static str,
    /// The tokenizer and pipeline of a text model.
    pub text: Option<crate::text::TextModel>,
    /// Inputs that index a table in the model, and the table's size.
    pub index_limits: Vec<IndexLimit>,
}

/// A decoded model's plans and what each step took.
pub(crate) struct Decoded {
    pub plans: Plans,
    pub index_limits: Vec<IndexLimit>,
    /// The plans' matrix-product kernels.
    pub kernels: String,
    pub decode: Duration,
    pub declutter: Duration,
    pub optimize: Duration,
}

pub(crate) fn datum_to_dtype(dt: DatumType) -> Result<DType, LoadError> {
    Ok(match dt {
        DatumType::F16 => DType::F16,
        DatumType::F32 => DType::F32,
        DatumType::F64 => DType::F64,
        DatumType::I8 => DType::I8,
        DatumType::I16 => DType::I16,
        DatumType::I32 => DType::I32,
        DatumType::I64 => DType::I64,
        DatumType::U8 => DType::U8,
        DatumType::U16 => DType::U16,
        DatumType::U32 => DType::U32,
        DatumType::U64 => DType::U64,
        DatumType::Bool => DType::Bool,
        DatumType::TDim => DType::Tdim,
        DatumType::String => DType::String,
        other => {
            return Err(LoadError::Signature(format!(
                "tensor type {other:?} is not supported"
            )))
        }
    })
}

pub(crate) fn dtype_to_datum(dt: DType) -> DatumType {
    match dt {
        DType::F16 => DatumType::F16,
        DType::F32 => DatumType::F32,
        DType::F64 => DatumType::F64,
        DType::I8 => DatumType::I8,
        DType::I16 => DatumType::I16,
        DType::I32 => DatumType::I32,
        DType::I64 => DatumType::I64,
        DType::U8 => DatumType::U8,
        DType::U16 => DatumType::U16,
        DType::U32 => DatumType::U32,
        DType::U64 => DatumType::U64,
        DType::Bool => DatumType::Bool,
        DType::Tdim => DatumType::TDim,
        DType::String => DatumType::String,
    }
}

pub(crate) fn tdim_to_dim(d: &TDim) -> Dim {
    match d.to_i64() {
        Ok(n) if n >= 0 => Dim::Fixed(n as u64),
        _ => Dim::Symbol(d.to_string()),
    }
}

/// What the ONNX file's own shape annotations are taken as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hints {
    /// As written.
    Kept,
    /// The symbolic dims of intermediate values and outputs forgotten (left unknown): a
    /// graph typed with its batch at 1, or at a concrete shape, would otherwise contradict
    /// an exporter's `batch` on every intermediate value.
    Loose,
}

fn decode(
    bytes: &[u8],
    folds: Option<&mut Vec<Folded>>,
    hints: Hints,
) -> Result<InferenceModel, LoadError> {
    let proto = <tract_onnx::pb::ModelProto as prost::Message>::decode(bytes)
        .map_err(|e| LoadError::Decode(e.to_string()))?;
    decode_proto(proto, folds, hints)
}

/// tract's graph of an already decoded ONNX model.
pub(crate) fn decode_proto(
    mut proto: tract_onnx::pb::ModelProto,
    folds: Option<&mut Vec<Folded>>,
    hints: Hints,
) -> Result<InferenceModel, LoadError> {
    // int8-packed weights become f32 again before tract plans the graph.
    crate::int8::dequantize_constants(&mut proto, folds).map_err(LoadError::Int8)?;
    if hints == Hints::Loose {
        forget_symbolic_hints(&mut proto);
    }
    let mut onnx = tract_onnx::onnx();
    crate::ml::register(&mut onnx);
    crate::constant_if::register(&mut onnx);
    onnx.model_for_proto_model(&proto)
        .map_err(|e| LoadError::Decode(format!("{e:#}")))
}

/// Clears the named symbolic dims of every intermediate value and output annotation (the
/// inputs keep theirs: the signature sets them anyway).
fn forget_symbolic_hints(proto: &mut tract_onnx::pb::ModelProto) {
    use tract_onnx::pb::tensor_shape_proto::dimension::Value as D;
    use tract_onnx::pb::type_proto::Value as T;
    let Some(graph) = proto.graph.as_mut() else {
        return;
    };
    for info in graph.value_info.iter_mut().chain(graph.output.iter_mut()) {
        let Some(T::TensorType(tensor)) = info.r#type.as_mut().and_then(|t| t.value.as_mut())
        else {
            continue;
        };
        for dim in tensor.shape.iter_mut().flat_map(|s| s.dim.iter_mut()) {
            if matches!(dim.value, Some(D::DimParam(_))) {
                dim.value = None;
            }
        }
    }
}

pub(crate) fn input_names(model: &InferenceModel) -> Vec<String> {
    model
        .inputs
        .iter()
        .map(|o| model.node(o.node).name.clone())
        .collect()
}

#[cfg(feature = "pack")]
pub(crate) fn output_names(model: &InferenceModel) -> Vec<String> {
    model
        .outputs
        .iter()
        .map(|o| {
            model
                .outlet_label(*o)
                .map(str::to_string)
                .unwrap_or_else(|| model.node(o.node).name.clone())
        })
        .collect()
}

/// Fix every input's type and shape to the served signature. Symbolic dims share one
/// symbol per name, so `batch` in two inputs is the same value.
pub(crate) fn apply_signature(
    model: &mut InferenceModel,
    inputs: &[TensorSpec],
) -> Result<(), LoadError> {
    let names = input_names(model);
    if names.len() != inputs.len() || names.iter().zip(inputs).any(|(n, s)| *n != s.name) {
        return Err(LoadError::Signature(format!(
            "model inputs {names:?} do not match the signature {:?}",
            inputs.iter().map(|s| &s.name).collect::<Vec<_>>()
        )));
    }
    for (ix, spec) in inputs.iter().enumerate() {
        let dims: Vec<TDim> = spec
            .shape
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => TDim::from(*n as i64),
                Dim::Symbol(s) => TDim::from(model.symbols.sym(s)),
            })
            .collect();
        let fact = InferenceFact::dt_shape(dtype_to_datum(spec.dtype), dims);
        model
            .set_input_fact(ix, fact)
            .map_err(|e| LoadError::Signature(format!("input {:?}: {e:#}", spec.name)))?;
    }
    Ok(())
}

#[cfg(feature = "pack")]
pub(crate) fn optimize(model: InferenceModel) -> Result<TypedModel, LoadError> {
    model
        .into_optimized()
        .map_err(LoadError::tract("type and optimize the model"))
}

/// A value of the graph whose size comes out negative at these (concrete) input shapes: an
/// input too small for a window or a stride, which tract types without complaint and which
/// would only fail when run.
pub(crate) fn negative_dim(model: &TypedModel) -> Option<String> {
    model.nodes().iter().find_map(|node| {
        node.outputs.iter().find_map(|o| {
            o.fact
                .shape
                .iter()
                .any(|d| d.to_i64().is_ok_and(|n| n < 0))
                .then(|| format!("node {:?} would have shape {:?}", node.name, o.fact.shape))
        })
    })
}

#[cfg(feature = "pack")]
pub(crate) fn output_specs(
    typed: &TypedModel,
    names: Vec<String>,
) -> Result<Vec<TensorSpec>, LoadError> {
    names
        .into_iter()
        .enumerate()
        .map(|(ix, name)| {
            let fact = typed
                .output_fact(ix)
                .map_err(LoadError::tract("read an output's type"))?;
            Ok(TensorSpec {
                dtype: datum_to_dtype(fact.datum_type)
                    .map_err(|e| LoadError::Signature(format!("output {name:?}: {e}")))?,
                shape: fact.shape.iter().map(tdim_to_dim).collect(),
                name,
            })
        })
        .collect()
}

/// The typed graph of packed ONNX, its inputs fixed to the served signature: what
/// `pack-models` declutters and compiles (recording the int8 weights it folds in `folds`),
/// and what the function loads from ONNX.
pub(crate) fn typed(
    bytes: &[u8],
    inputs: &[TensorSpec],
    folds: Option<&mut Vec<Folded>>,
    hints: Hints,
) -> Result<TypedModel, LoadError> {
    let mut model = decode(bytes, folds, hints)?;
    apply_signature(&mut model, inputs)?;
    model
        .into_typed()
        .map_err(LoadError::tract("type the model"))
}

/// The compiled form's inputs and outputs must be the lock's: same names, types and dims.
fn check_compiled(model: &TypedModel, entry: &ModelEntry) -> Result<(), LoadError> {
    let facts = |outlets: &[OutletId]| -> Result<Vec<(DType, Vec<Dim>)>, LoadError> {
        outlets
            .iter()
            .map(|o| {
                let fact = model
                    .outlet_fact(*o)
                    .map_err(LoadError::tract("read the compiled model's types"))?;
                Ok((
                    datum_to_dtype(fact.datum_type)?,
                    fact.shape.iter().map(tdim_to_dim).collect(),
                ))
            })
            .collect()
    };
    let names: Vec<&str> = model
        .inputs
        .iter()
        .map(|o| model.node(o.node).name.as_str())
        .collect();
    let spec = |specs: &[TensorSpec]| -> Vec<(DType, Vec<Dim>)> {
        specs.iter().map(|s| (s.dtype, s.shape.clone())).collect()
    };
    let want: Vec<&str> = entry.inputs.iter().map(|s| s.name.as_str()).collect();
    if names != want
        || facts(&model.inputs)? != spec(&entry.inputs)
        || facts(&model.outputs)? != spec(&entry.outputs)
    {
        return Err(LoadError::Signature(format!(
            "the compiled model's inputs {names:?} and outputs do not match the lock's signature (inputs {want:?}); pack the model again"
        )));
    }
    Ok(())
}

/// Decode and optimize `bytes` for serving with the signature recorded in `entry`: ONNX is
/// decoded, typed and decluttered here; the compiled form only needs codegen. The plans are
/// the ones `entry.plans` names: rows are typed with the batch at 1; per-shape plans from
/// ONNX keep the decoded graph untyped, each shape typed when first asked for.
pub(crate) fn load(
    bytes: &[u8],
    entry: &ModelEntry,
    limits: PlanCacheLimits,
) -> Result<Decoded, LoadError> {
    let started = Instant::now();
    // Rows: the batch is 1 in every plan, so the graph is typed with it (some graphs type
    // only so).
    let batch = entry
        .plans
        .rows()
        .then(|| crate::plans::batch_dim(entry))
        .flatten();
    let inputs = match &batch {
        Some(batch) => crate::plans::with_batch_one(&entry.inputs, batch),
        None => entry.inputs.clone(),
    };
    let per_shape_onnx = crate::plans::shape_source(entry) == Some(ShapeSource::Onnx);
    let hints = match batch.is_some() || per_shape_onnx {
        true => Hints::Loose,
        false => Hints::Kept,
    };
    if per_shape_onnx {
        let mut model = decode(bytes, None, hints)?;
        apply_signature(&mut model, &inputs)?;
        let decoded = started.elapsed();
        let started = Instant::now();
        let plans =
            Plans::per_shape(Source::Onnx(model), entry, limits).map_err(LoadError::Plans)?;
        return Ok(Decoded {
            kernels: plans.kernels(),
            plans,
            index_limits: Vec::new(),
            decode: decoded,
            declutter: Duration::ZERO,
            optimize: started.elapsed(),
        });
    }
    let typed = match entry.format {
        ModelFormat::Onnx => typed(bytes, &inputs, None, hints)?,
        ModelFormat::Nnef => {
            let model = crate::nnef::read(bytes)?;
            check_compiled(&model, entry)?;
            match &batch {
                Some(batch) => {
                    let one = HashMap::from([(model.symbols.sym(batch), TDim::from(1))]);
                    model
                        .set_symbols(&one)
                        .map_err(LoadError::tract("fix the batch to 1"))?
                }
                None => model,
            }
        }
    };
    let decoded = started.elapsed();
    let started = Instant::now();
    // Read before optimizing: a plain Gather on a constant is easiest to see here.
    let index_limits = index_limits(&typed);
    let mut typed = typed;
    // ONNX: the whole declutter; the compiled form: only what reading it back adds (casts,
    // broadcast axes), which leaves the plan as fast as the ONNX one.
    typed
        .declutter()
        .map_err(LoadError::tract("declutter the model"))?;
    let declutter = started.elapsed();
    let started = Instant::now();
    let plans = Plans::new(typed, entry, limits).map_err(LoadError::Plans)?;
    Ok(Decoded {
        kernels: plans.kernels(),
        plans,
        index_limits,
        decode: decoded,
        declutter,
        optimize: started.elapsed(),
    })
}
