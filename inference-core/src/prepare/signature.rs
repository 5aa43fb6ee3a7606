//! A model's served signature, read at pack time: input and output names, element types and
//! shapes, with unknown input dims turned into symbols the function checks requests against.

use std::collections::BTreeMap;

use model_lock::{Dim, TensorSpec};
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::InferenceModel;
use tract_onnx::tract_hir::infer::Factoid;

use crate::loader::{
    apply_signature, datum_to_dtype, decode_proto, input_names, negative_dim, optimize,
    output_names, output_specs, tdim_to_dim, Hints,
};

/// A manifest override of one input's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct InputOverride {
    pub name: String,
    pub shape: Vec<Dim>,
}

/// What the function serves: the lock's `inputs` and `outputs`, and how tract can type the
/// graph, which decides the plans it can run on.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    pub typing: Typing,
    /// Concrete input shapes (input name → dims, the batch at 1) at which the graph types and
    /// optimizes, smallest first: what a generated sample request sends, and the two sizes
    /// a request's memory cost is measured on. Empty when no input has a symbolic dim other
    /// than the batch.
    pub probes: Vec<BTreeMap<String, Vec<u64>>>,
}

/// How tract can type a model's graph.
#[derive(Debug, Clone, PartialEq)]
pub enum Typing {
    /// With every symbolic dim symbolic: any plan fits.
    Symbolic,
    /// Only with the batch (the first dim of every input and output) at 1, the other dims
    /// symbolic: plans run rows one at a time. `why` says what made it so.
    BatchOne { why: String },
    /// Only with every dim concrete: a plan per request shape, each typed from the ONNX
    /// graph; `rows` when the batch is 1 in each and rows run one at a time.
    Concrete { why: String, rows: bool },
}

impl Typing {
    /// What the pack report says of it.
    pub fn describe(&self) -> String {
        match self {
            Typing::Symbolic => "typed with its symbolic dims".into(),
            Typing::BatchOne { why } => format!("batch fixed at 1, rows run one by one: {why}"),
            Typing::Concrete { why, rows } => format!(
                "a plan per request shape, typed from the ONNX graph{}: {why}",
                if *rows { ", rows run one by one" } else { "" }
            ),
        }
    }
}

/// The name the batch dim gets when the model's own name for it is not one (a fixed 1, or
/// `unk__…` names that differ between inputs).
const BATCH: &str = "batch";

/// Sizes tried for symbolic dims other than the batch when looking for shapes the graph
/// types at: multiples of 32 first (detectors and OCR nets downsample by 32), then audio
/// frame sizes.
const PROBE_SIZES: [u64; 10] = [64, 128, 224, 256, 320, 512, 640, 32, 16, 1024];

/// Reads the signature of an ONNX file (see [`signature_of`]).
pub fn inspect(bytes: &[u8], overrides: &[InputOverride]) -> Result<Signature, String> {
    let proto = <ModelProto as prost::Message>::decode(bytes)
        .map_err(|e| format!("cannot decode ONNX: {e}"))?;
    signature_of(proto, overrides, &[])
}

/// Unknown input dims become symbols (`batch` for the first axis, `dim<N>` for others)
/// unless `overrides` fixes them; outputs are typed by running tract's analysis with those
/// inputs, exactly as the function will. Where tract cannot type the graph so, the batch is
/// tried at 1, then every dim concrete (the `declared` shapes first, then
/// [`PROBE_SIZES`]): [`Typing`] says which worked. A batch the model fixes at 1 becomes a
/// symbolic `batch` served row by row.
pub(crate) fn signature_of(
    proto: ModelProto,
    overrides: &[InputOverride],
    declared: &[BTreeMap<String, Vec<u64>>],
) -> Result<Signature, String> {
    // Kept for the typings tried after the symbolic one, which forget the file's hints.
    let source = proto.clone();
    let model = decode_proto(proto, None, Hints::Kept)?;
    let names = input_names(&model);
    for o in overrides {
        if !names.contains(&o.name) {
            return Err(format!(
                "override names input {:?}, but the model's inputs are {names:?}",
                o.name
            ));
        }
    }
    let mut inputs = Vec::new();
    for (ix, name) in names.iter().enumerate() {
        let fact = model.input_fact(ix).map_err(|e| format!("{e:#}"))?;
        let dtype = fact
            .datum_type
            .concretize()
            .ok_or_else(|| format!("input {name:?} has no declared element type"))?;
        let dtype = datum_to_dtype(dtype).map_err(|e| format!("input {name:?}: {e}"))?;
        let shape = if let Some(o) = overrides.iter().find(|o| &o.name == name) {
            o.shape.clone()
        } else {
            if fact.shape.is_open() {
                return Err(format!(
                    "input {name:?} has no declared rank: give its shape in the manifest"
                ));
            }
            let rank = fact.shape.dims().count();
            fact.shape
                .dims()
                .enumerate()
                .map(|(axis, d)| match d.concretize() {
                    Some(d) => tdim_to_dim(&d),
                    None if axis == 0 => Dim::Symbol(BATCH.into()),
                    // An unnamed dim is shared with the same axis of inputs of the same
                    // rank (token ids and their mask), not with inputs of another rank (a
                    // recurrent state beside its audio).
                    None => {
                        let shared = format!("dim{axis}");
                        let clash = inputs.iter().any(|s: &TensorSpec| {
                            s.shape.len() != rank && s.shape.contains(&Dim::Symbol(shared.clone()))
                        });
                        match clash {
                            false => Dim::Symbol(shared),
                            true => Dim::Symbol(format!("dim{axis}_{ix}")),
                        }
                    }
                })
                .collect()
        };
        inputs.push(TensorSpec {
            name: name.clone(),
            dtype,
            shape,
        });
    }
    let out_names = output_names(&model);
    let overridden = |name: &str| overrides.iter().any(|o| o.name == name);
    let typed_as = |inputs: &[TensorSpec]| -> Result<Vec<TensorSpec>, String> {
        let mut model = model.clone();
        apply_signature(&mut model, inputs)?;
        let typed = optimize(model)?;
        Ok(output_specs(&typed, out_names.clone())?)
    };

    // 1. Every symbolic dim symbolic.
    let symbolic = typed_as(&inputs);
    // Concrete shapes are typed without the file's symbolic hints, as the loader types them.
    let loose = decode_proto(source, None, Hints::Loose)?;
    if let Ok(outputs) = &symbolic {
        // A batch the model itself fixes at 1 (not the manifest): served row by row.
        let ones = |specs: &[TensorSpec]| {
            !specs.is_empty()
                && specs
                    .iter()
                    .all(|s| s.shape.first() == Some(&Dim::Fixed(1)))
        };
        let from_model = inputs.iter().all(|s| !overridden(&s.name));
        let named_batch = inputs
            .iter()
            .chain(outputs)
            .any(|s| s.shape.contains(&Dim::Symbol(BATCH.into())));
        if from_model && !named_batch && ones(&inputs) && ones(outputs) {
            let inputs = with_first(&inputs, BATCH);
            let outputs = with_first(outputs, BATCH);
            let probes = probes(&loose, &inputs, declared)?;
            return Ok(Signature {
                inputs,
                outputs,
                typing: Typing::BatchOne {
                    why: "the model fixes its batch dim at 1".into(),
                },
                probes,
            });
        }
    }
    let symbolic_error = match symbolic {
        Ok(outputs) => {
            let probes = probes(&loose, &inputs, declared)?;
            return Ok(Signature {
                inputs,
                outputs,
                typing: Typing::Symbolic,
                probes,
            });
        }
        Err(e) => e,
    };
    let why = first_line(&symbolic_error);
    let model = loose;
    let typed_as = |inputs: &[TensorSpec]| -> Result<Vec<TensorSpec>, String> {
        let mut model = model.clone();
        apply_signature(&mut model, inputs)?;
        let typed = optimize(model)?;
        Ok(output_specs(&typed, out_names.clone())?)
    };

    // 2. The batch at 1, the other dims symbolic. Every input must lead with a symbolic dim
    // (exporters name each input's batch apart: `unk__330`, `unk__331`: they become one) or
    // with the model's own 1.
    let batched = inputs.iter().all(|s| {
        !overridden(&s.name) && matches!(s.shape.first(), Some(Dim::Symbol(_) | Dim::Fixed(1)))
    }) && inputs
        .iter()
        .any(|s| s.shape.iter().any(|d| matches!(d, Dim::Symbol(_))));
    let served = if batched {
        with_first(&inputs, BATCH)
    } else {
        inputs.clone()
    };
    let mut batch_one_error = None;
    if batched {
        let one = crate::plans::with_batch_one(&served, BATCH);
        let typed = typed_as(&one);
        if let Err(e) = &typed {
            batch_one_error = Some(first_line(e));
        }
        if let Ok(outputs) = typed {
            if outputs
                .iter()
                .all(|s| s.shape.first() == Some(&Dim::Fixed(1)))
            {
                let outputs = with_first(&outputs, BATCH);
                let probes = probes(&model, &served, declared)?;
                return Ok(Signature {
                    inputs: served,
                    outputs,
                    typing: Typing::BatchOne {
                        why: format!(
                            "tract could not type the graph with a symbolic batch ({why})"
                        ),
                    },
                    probes,
                });
            }
        }
    }

    // 3. Every dim concrete: a plan per request shape.
    let probes = probes(&model, &served, declared)?;
    if probes.is_empty() {
        let error = match batch_one_error {
            Some(e) => format!("{symbolic_error}\nWith the batch at 1: {e}"),
            None => symbolic_error,
        };
        return Err(with_shape_advice(error, &inputs));
    }
    let outputs = concrete_outputs(typed_as, &served, &probes)?;
    let rows = batched && crate::plans::batch_of(&served, &outputs).is_some();
    // Without rows, a batch the model fixes at 1 stays 1.
    let served = match rows {
        true => served,
        false => inputs,
    };
    Ok(Signature {
        inputs: served,
        outputs,
        typing: Typing::Concrete {
            why: format!("tract could not type the graph with symbolic dims ({why})"),
            rows,
        },
        probes,
    })
}

/// `specs` with their first dim named `name`.
fn with_first(specs: &[TensorSpec], name: &str) -> Vec<TensorSpec> {
    specs
        .iter()
        .map(|s| {
            let mut s = s.clone();
            if let Some(first) = s.shape.first_mut() {
                *first = Dim::Symbol(name.into());
            }
            s
        })
        .collect()
}

fn first_line(error: &str) -> String {
    let line = error.lines().next().unwrap_or_default();
    line.chars().take(240).collect()
}

/// Up to two concrete input shapes at which the graph types and optimizes: the `declared`
/// ones, else each symbolic dim other than the batch at the same size from
/// [`PROBE_SIZES`], the batch at 1.
/// Empty when the inputs have no symbolic dim but the batch.
fn probes(
    model: &InferenceModel,
    inputs: &[TensorSpec],
    declared: &[BTreeMap<String, Vec<u64>>],
) -> Result<Vec<BTreeMap<String, Vec<u64>>>, String> {
    let symbolic = |s: &TensorSpec| s.shape.iter().skip(1).any(|d| matches!(d, Dim::Symbol(_)));
    if declared.is_empty() && !inputs.iter().any(symbolic) {
        return Ok(Vec::new());
    }
    let types = |shape: &BTreeMap<String, Vec<u64>>| -> Result<(), String> {
        let mut model = model.clone();
        let fixed: Vec<TensorSpec> = inputs
            .iter()
            .map(|s| {
                let dims = shape
                    .get(&s.name)
                    .ok_or_else(|| format!("the shape gives no dims for input {:?}", s.name))?;
                Ok(TensorSpec {
                    shape: dims.iter().map(|d| Dim::Fixed(*d)).collect(),
                    ..s.clone()
                })
            })
            .collect::<Result<_, String>>()?;
        apply_signature(&mut model, &fixed)?;
        let typed = optimize(model)?;
        if let Some(what) = negative_dim(&typed) {
            return Err(format!("a negative size at this shape: {what}"));
        }
        // An input too small for a window folds to an empty answer: no shape to prove on.
        let empty = typed
            .outputs
            .iter()
            .filter_map(|o| typed.outlet_fact(*o).ok())
            .any(|f| f.shape.iter().any(|d| d.to_i64().is_ok_and(|n| n == 0)));
        match empty {
            true => Err("an empty answer at this shape".into()),
            false => Ok(()),
        }
    };
    let mut found = Vec::new();
    for shape in declared {
        types(shape).map_err(|e| {
            format!(
                "declared shape {shape:?} does not fit the model: {}",
                first_line(&e)
            )
        })?;
        found.push(shape.clone());
    }
    if !found.is_empty() {
        found.truncate(2);
        return Ok(found);
    }
    for size in PROBE_SIZES {
        let shape: BTreeMap<String, Vec<u64>> = inputs
            .iter()
            .map(|s| {
                let dims = s
                    .shape
                    .iter()
                    .enumerate()
                    .map(|(axis, d)| match d {
                        Dim::Fixed(n) => *n,
                        Dim::Symbol(_) if axis == 0 => 1,
                        Dim::Symbol(_) => size,
                    })
                    .collect();
                (s.name.clone(), dims)
            })
            .collect();
        if types(&shape).is_ok() {
            found.push(shape);
            if found.len() == 2 {
                break;
            }
        }
    }
    found.sort_by_key(|shape| {
        shape
            .values()
            .map(|d| d.iter().product::<u64>())
            .sum::<u64>()
    });
    Ok(found)
}

/// The outputs of a graph typed only at concrete shapes: a dim that is the same at every
/// probe is fixed; one that follows an input's symbolic dim takes its name; the batch keeps
/// its name; any other that varies is named `<output>.<axis>`.
fn concrete_outputs(
    typed_as: impl Fn(&[TensorSpec]) -> Result<Vec<TensorSpec>, String>,
    inputs: &[TensorSpec],
    probes: &[BTreeMap<String, Vec<u64>>],
) -> Result<Vec<TensorSpec>, String> {
    let at = |probe: &BTreeMap<String, Vec<u64>>| -> Result<Vec<TensorSpec>, String> {
        let fixed: Vec<TensorSpec> = inputs
            .iter()
            .map(|s| TensorSpec {
                shape: probe[&s.name].iter().map(|d| Dim::Fixed(*d)).collect(),
                ..s.clone()
            })
            .collect();
        typed_as(&fixed)
    };
    let typed: Vec<Vec<TensorSpec>> = probes.iter().map(at).collect::<Result<_, _>>()?;
    // Each input symbol's value at each probe.
    let mut symbols: Vec<(String, Vec<u64>)> = Vec::new();
    for spec in inputs {
        for (axis, d) in spec.shape.iter().enumerate() {
            if let Dim::Symbol(name) = d {
                if symbols.iter().any(|(n, _)| n == name) {
                    continue;
                }
                let values = probes.iter().map(|p| p[&spec.name][axis]).collect();
                symbols.push((name.clone(), values));
            }
        }
    }
    let first = &typed[0];
    Ok(first
        .iter()
        .enumerate()
        .map(|(o, spec)| {
            let shape = spec
                .shape
                .iter()
                .enumerate()
                .map(|(axis, d)| {
                    let values: Vec<u64> = typed
                        .iter()
                        .map(|t| match t[o].shape.get(axis) {
                            Some(Dim::Fixed(n)) => *n,
                            _ => u64::MAX,
                        })
                        .collect();
                    if axis == 0
                        && inputs
                            .iter()
                            .all(|s| s.shape.first() == Some(&Dim::Symbol(BATCH.into())))
                        && values.iter().all(|v| *v == 1)
                    {
                        return Dim::Symbol(BATCH.into());
                    }
                    let varies = values.windows(2).any(|w| w[0] != w[1]);
                    if !varies && probes.len() > 1 {
                        return d.clone();
                    }
                    match symbols
                        .iter()
                        .find(|(name, v)| *v == values && name != BATCH)
                    {
                        Some((name, _)) if varies || probes.len() == 1 => Dim::Symbol(name.clone()),
                        _ if varies => Dim::Symbol(format!("{}.{axis}", spec.name)),
                        _ => d.clone(),
                    }
                })
                .collect();
            TensorSpec {
                shape,
                ..spec.clone()
            }
        })
        .collect())
}

/// When tract cannot type a graph whose inputs have symbolic dims (a `Reshape` or `Squeeze`
/// on a size computed from a sequence length, as in silero VAD), the way out is usually to
/// fix those dims in the manifest: the error says which, and shows the declared shapes.
fn with_shape_advice(error: String, inputs: &[TensorSpec]) -> String {
    let symbolic: Vec<&TensorSpec> = inputs
        .iter()
        .filter(|s| s.shape.iter().any(|d| matches!(d, Dim::Symbol(_))))
        .collect();
    if symbolic.is_empty() {
        return error;
    }
    let show = |shape: &[Dim]| {
        shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    // The symbols tract names in its message (`Sym(sequence)`) are the ones it could not
    // resolve; without any, every symbolic dim is a suspect.
    let named: Vec<String> = error
        .split("Sym(")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .map(str::to_string)
        .collect();
    let suspect = |name: &str| named.is_empty() || named.iter().any(|n| n == name);
    let declared: Vec<String> = inputs
        .iter()
        .map(|s| format!("{}: [{}] {}", s.name, show(&s.shape), s.dtype))
        .collect();
    let fixes: Vec<String> = symbolic
        .iter()
        .map(|s| {
            let shape: Vec<String> = s
                .shape
                .iter()
                .map(|d| match d {
                    Dim::Symbol(name) if suspect(name) => format!("<{name}>"),
                    Dim::Symbol(name) => format!("{name:?}"),
                    Dim::Fixed(n) => n.to_string(),
                })
                .collect();
            format!(
                "    [model.inputs.{}]\n    shape = [{}]",
                s.name,
                shape.join(", ")
            )
        })
        .collect();
    let unresolved = match named.is_empty() {
        true => String::new(),
        false => {
            let mut names = named.clone();
            names.sort();
            names.dedup();
            format!(" ({})", names.join(", "))
        }
    };
    format!(
        "{error}\n\ntract could not type this graph with symbolic input dims{unresolved}; the model declares {}. \
Nor could it at any of the sizes tried for them ({}). If the model runs at other sizes, declare them (one input name → dims per shape):\n    shapes = [{{ {} }}]\nor, if it always runs with fixed sizes there, fix them in the manifest (each <dim> a number; a dim left as a string stays symbolic):\n{}",
        declared.join("; "),
        PROBE_SIZES.map(|s| s.to_string()).join(", "),
        inputs
            .iter()
            .map(|s| format!("{} = [{}]", s.name, s.shape.iter().map(|d| match d {
                Dim::Fixed(n) => n.to_string(),
                Dim::Symbol(n) => format!("<{n}>"),
            }).collect::<Vec<_>>().join(", ")))
            .collect::<Vec<_>>()
            .join(", "),
        fixes.join("\n")
    ) + &scalar_hint(inputs)
}

/// A scalar input the graph may branch on (a sample rate), and how to fix it to a value.
fn scalar_hint(inputs: &[TensorSpec]) -> String {
    let scalars: Vec<&TensorSpec> = inputs.iter().filter(|s| s.shape.is_empty()).collect();
    if scalars.is_empty() {
        return String::new();
    }
    let lines: Vec<String> = scalars
        .iter()
        .map(|s| {
            format!(
                "    [model.inputs.{}]\n    value = <the value you always send>",
                s.name
            )
        })
        .collect();
    format!(
        "\nA scalar input the graph may branch on ({}) can be fixed to the value you serve, so tract folds what depends on it:\n{}",
        scalars
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        lines.join("\n")
    )
}
