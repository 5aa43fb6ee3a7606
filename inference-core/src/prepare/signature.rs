//! A model's served signature, read at pack time: input and output names, element types and
//! shapes, with unknown input dims turned into symbols the function checks requests against.

use model_lock::{Dim, TensorSpec};
use tract_onnx::pb::ModelProto;
use tract_onnx::tract_hir::infer::Factoid;

use crate::loader::{
    apply_signature, datum_to_dtype, decode_proto, input_names, optimize, output_names,
    output_specs, tdim_to_dim,
};

/// A manifest override of one input's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct InputOverride {
    pub name: String,
    pub shape: Vec<Dim>,
}

/// What the function serves: the lock's `inputs` and `outputs`.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

/// Reads the signature of an ONNX file (see [`signature_of`]).
pub fn inspect(bytes: &[u8], overrides: &[InputOverride]) -> Result<Signature, String> {
    let proto = <ModelProto as prost::Message>::decode(bytes)
        .map_err(|e| format!("cannot decode ONNX: {e}"))?;
    signature_of(proto, overrides)
}

/// Unknown input dims become symbols (`batch` for the first axis, `dim<N>` for others)
/// unless `overrides` fixes them; outputs are typed by running tract's analysis with those
/// inputs, exactly as the function will.
pub(crate) fn signature_of(
    proto: ModelProto,
    overrides: &[InputOverride],
) -> Result<Signature, String> {
    let mut model = decode_proto(proto, None)?;
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
            fact.shape
                .dims()
                .enumerate()
                .map(|(axis, d)| match d.concretize() {
                    Some(d) => tdim_to_dim(&d),
                    None if axis == 0 => Dim::Symbol("batch".into()),
                    None => Dim::Symbol(format!("dim{axis}")),
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
    apply_signature(&mut model, &inputs)?;
    let typed = optimize(model).map_err(|e| with_shape_advice(e, &inputs))?;
    let outputs = output_specs(&typed, out_names)?;
    Ok(Signature { inputs, outputs })
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
If it always runs with fixed sizes there, fix them in the manifest (each <dim> a number; a dim left as a string stays symbolic):\n{}",
        declared.join("; "),
        fixes.join("\n")
    )
}
