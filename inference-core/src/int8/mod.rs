//! int8 weights: in the ONNX file, f32 in memory (this file and `compiled.rs`); and
//! `quantize = "int8-dynamic"`'s int8 products in the compiled form (`dynamic.rs`).
//!
//! Pack time (`prepare::int8_weights`): large float weights feeding MatMul/Gemm (per output
//! column) and Gather tables (per row) become symmetric per-channel int8 plus f32 scales,
//! restored by a standard `DequantizeLinear` node: a valid ONNX file ~4x smaller.
//!
//! Load time ([`dequantize_constants`]): every `DequantizeLinear` whose inputs are all
//! initializers is folded back into an f32 initializer before tract sees the graph, so the
//! optimized plan is the fp32 one. (Measured on tract 0.23: leaving `DequantizeLinear →
//! MatMul` in the graph runs ~2.5x slower than fp32.)

use std::collections::HashMap;

mod compiled;
// The pass that writes int8-dynamic's operators into a graph: pack time only.
#[cfg(feature = "pack")]
mod dynamic;
mod dynamic_ops;
#[cfg(test)]
mod minilm_tests;

#[cfg(feature = "pack")]
pub(crate) use compiled::keep_int8;
pub(crate) use compiled::Folded;
#[cfg(feature = "pack")]
pub(crate) use dynamic::{products, rewrite as rewrite_dynamic};

/// Our int8 operators in the compiled form: restored int8 weights, and int8-dynamic's
/// activation quantizer and product dequantizer.
pub(crate) fn register_nnef(registry: &mut tract_nnef::internal::Registry) {
    compiled::register_nnef(registry);
    dynamic_ops::register_nnef(registry);
}

use tract_onnx::pb::{self, tensor_proto::DataType, ModelProto, NodeProto, TensorProto};

/// Tensors with fewer elements than this stay f32: their scales would cost more than they save.
#[cfg(feature = "pack")]
pub const DEFAULT_MIN_ELEMENTS: usize = 1024;

pub(crate) fn floats(t: &TensorProto) -> Option<Vec<f32>> {
    if t.data_type != DataType::Float as i32
        || t.data_location == Some(pb::tensor_proto::DataLocation::External as i32)
    {
        return None;
    }
    if !t.raw_data.is_empty() {
        if !t.raw_data.len().is_multiple_of(4) {
            return None;
        }
        Some(
            t.raw_data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    } else {
        Some(t.float_data.clone())
    }
}

fn int8s(t: &TensorProto) -> Option<Vec<i8>> {
    if t.data_type != DataType::Int8 as i32 {
        return None;
    }
    if !t.raw_data.is_empty() {
        Some(t.raw_data.iter().map(|b| *b as i8).collect())
    } else {
        // The ONNX spec stores int8 in int32_data when raw_data is not used.
        Some(t.int32_data.iter().map(|v| *v as i8).collect())
    }
}

pub(crate) fn attr_int(node: &NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

/// The channel axis a weight is quantized along, if every use of it is one we handle.
/// Restores the int8 weights of a packed model for tract. Every `DequantizeLinear` with
/// constant inputs either
/// - stays int8 when it only feeds row lookups (`Gather` on axis 0 of an embedding table):
///   the lookup reads int8 rows and scales just those (`Gather → Cast → Mul`), so a
///   30k-row vocabulary never exists in f32 — 4x less memory and nothing to convert at load;
/// - or is folded into an f32 initializer (MatMul/Gemm weights: tract's f32 kernels are its
///   fast path).
///
/// Returns how many were restored. With `folds`, each weight folded to f32 is recorded
/// there too (the compiled form keeps those int8).
pub fn dequantize_constants(
    model: &mut ModelProto,
    mut folds: Option<&mut Vec<Folded>>,
) -> Result<usize, String> {
    let Some(graph) = model.graph.as_mut() else {
        return Ok(0);
    };
    let index: HashMap<String, usize> = graph
        .initializer
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    // Who reads each tensor, to tell lookup-only tables apart.
    let mut readers: HashMap<&str, Vec<(&str, i64, usize)>> = HashMap::new();
    for node in &graph.node {
        for (ix, input) in node.input.iter().enumerate() {
            let axis = attr_int(node, "axis").unwrap_or(0);
            readers
                .entry(input.as_str())
                .or_default()
                .push((node.op_type.as_str(), axis, ix));
        }
    }
    let graph_outputs: std::collections::HashSet<&str> =
        graph.output.iter().map(|o| o.name.as_str()).collect();
    let mut lookup_tables: HashMap<String, (String, String)> = HashMap::new();
    let mut folded = Vec::new();
    let mut consumed = Vec::new();
    let mut remaining = Vec::with_capacity(graph.node.len());
    let mut count = 0;
    for node in &graph.node {
        let constant = node.op_type == "DequantizeLinear"
            && node.domain.is_empty()
            && node.output.len() == 1
            && node
                .input
                .iter()
                .all(|i| i.is_empty() || index.contains_key(i));
        if !constant {
            remaining.push(node.clone());
            continue;
        }
        let get = |ix: usize| {
            node.input
                .get(ix)
                .filter(|n| !n.is_empty())
                .map(|n| &graph.initializer[index[n]])
        };
        let (Some(x), Some(scale)) = (get(0), get(1)) else {
            remaining.push(node.clone());
            continue;
        };
        let (Some(q), Some(s)) = (int8s(x), floats(scale)) else {
            remaining.push(node.clone());
            continue;
        };
        let zp = match get(2) {
            Some(z) => int8s(z).ok_or_else(|| format!("{}: zero point is not int8", node.name))?,
            None => vec![0],
        };
        let rank = x.dims.len() as i64;
        let axis = attr_int(node, "axis").unwrap_or(1);
        let axis = if axis < 0 { axis + rank } else { axis };
        // Elements per step along `axis`, and the axis length.
        let inner: usize = x
            .dims
            .iter()
            .skip(axis as usize + 1)
            .product::<i64>()
            .max(1) as usize;
        let len = x.dims.get(axis as usize).copied().unwrap_or(1) as usize;
        if s.len() != 1 && s.len() != len {
            return Err(format!(
                "{}: {} scales for an axis of length {len}",
                node.name,
                s.len()
            ));
        }
        count += 1;
        let out = &node.output[0];
        let lookup_only = rank == 2
            && axis == 0
            && s.len() == len
            && zp.iter().all(|z| *z == 0)
            && !graph_outputs.contains(out.as_str())
            && readers.get(out.as_str()).is_some_and(|r| {
                r.iter()
                    .all(|(op, gather_axis, ix)| *op == "Gather" && *gather_axis == 0 && *ix == 0)
            });
        if lookup_only {
            lookup_tables.insert(out.clone(), (node.input[0].clone(), node.input[1].clone()));
            continue;
        }
        let raw_data = dequantize(&q, &s, &zp, inner, len);
        if let Some(folds) = folds.as_deref_mut().filter(|_| zp.iter().all(|z| *z == 0)) {
            folds.push(Folded {
                q,
                scales: s,
                inner,
                len,
                f32_bytes: raw_data.clone(),
            });
        }
        folded.push(TensorProto {
            name: out.clone(),
            dims: x.dims.clone(),
            data_type: DataType::Float as i32,
            raw_data,
            ..Default::default()
        });
        consumed.extend(node.input.iter().filter(|n| !n.is_empty()).cloned());
    }
    let mut nodes = Vec::with_capacity(remaining.len());
    let mut axes_tensor = None;
    for mut node in remaining {
        let table = (node.op_type == "Gather")
            .then(|| lookup_tables.get(&node.input[0]))
            .flatten();
        let Some((q, scale)) = table else {
            nodes.push(node);
            continue;
        };
        let axes = axes_tensor
            .get_or_insert_with(|| format!("{}__lookup_axes", node.input[0]))
            .clone();
        let out = std::mem::take(&mut node.output[0]);
        let ids = node.input[1].clone();
        let rows = format!("{out}__int8_rows");
        let floats = format!("{out}__rows");
        let row_scale = format!("{out}__row_scale");
        let row_scale_col = format!("{out}__row_scale_col");
        node.input[0] = q.clone();
        node.output[0] = rows.clone();
        let base = node.name.clone();
        nodes.push(node);
        let simple = |op: &str, suffix: &str, input: Vec<String>, output: &str| NodeProto {
            name: format!("{base}__{suffix}"),
            op_type: op.into(),
            input,
            output: vec![output.to_string()],
            ..Default::default()
        };
        let mut cast = simple("Cast", "cast", vec![rows], &floats);
        cast.attribute.push(pb::AttributeProto {
            name: "to".into(),
            r#type: pb::attribute_proto::AttributeType::Int as i32,
            i: DataType::Float as i64,
            ..Default::default()
        });
        nodes.push(cast);
        nodes.push(simple(
            "Gather",
            "scale",
            vec![scale.clone(), ids],
            &row_scale,
        ));
        nodes.push(simple(
            "Unsqueeze",
            "scale_col",
            vec![row_scale, axes.clone()],
            &row_scale_col,
        ));
        nodes.push(simple(
            "Mul",
            "dequantize",
            vec![floats, row_scale_col],
            &out,
        ));
    }
    graph.node = nodes;
    if let Some(axes) = axes_tensor {
        graph.initializer.push(TensorProto {
            name: axes,
            dims: vec![1],
            data_type: DataType::Int64 as i32,
            raw_data: (-1i64).to_le_bytes().to_vec(),
            ..Default::default()
        });
    }
    // Drop the int8 tensors and scales nobody else reads.
    let still_used: std::collections::HashSet<&String> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter())
        .chain(graph.output.iter().map(|o| &o.name))
        .collect();
    let drop: std::collections::HashSet<String> = consumed
        .into_iter()
        .filter(|n| !still_used.contains(n))
        .collect();
    graph.initializer.retain(|t| !drop.contains(&t.name));
    graph.initializer.extend(folded);
    Ok(count)
}

/// [`dequantize_f32`] as little-endian f32 bytes, for an ONNX initializer.
/// Written in the one pass, no f32 buffer in between: this is on an ONNX cold start.
fn dequantize(q: &[i8], scales: &[f32], zps: &[i8], inner: usize, len: usize) -> Vec<u8> {
    let mut out = vec![[0u8; 4]; q.len()];
    dequantize_into(q, scales, zps, inner, len, &mut out, f32::to_le_bytes);
    out.into_flattened()
}

/// [`dequantize_into`] as f32 values, for the compiled form's weights.
fn dequantize_f32(q: &[i8], scales: &[f32], zps: &[i8], inner: usize, len: usize, out: &mut [f32]) {
    dequantize_into(q, scales, zps, inner, len, out, |v| v);
}

/// `(q - zero_point) * scale` along an axis of length `len` with `inner` elements per step,
/// each value stored into `out` through `store`. Written as row-by-row zips so it
/// vectorizes: this is most of what a packed transformer costs at load.
fn dequantize_into<O>(
    q: &[i8],
    scales: &[f32],
    zps: &[i8],
    inner: usize,
    len: usize,
    out: &mut [O],
    store: impl Fn(f32) -> O,
) {
    let per_channel = |c: usize| {
        let s = if scales.len() == 1 {
            scales[0]
        } else {
            scales[c]
        };
        let z = if zps.len() == 1 { zps[0] } else { zps[c] };
        (s, z as f32)
    };
    if inner == 1 && scales.len() == len && zps.len() == 1 {
        // One scale per column: zip each row with the scales.
        let z = zps[0] as f32;
        for (row, out) in q.chunks_exact(len).zip(out.chunks_exact_mut(len)) {
            for ((v, s), o) in row.iter().zip(scales).zip(out.iter_mut()) {
                *o = store((*v as f32 - z) * s);
            }
        }
        return;
    }
    for (ix, (block, out)) in q
        .chunks_exact(inner)
        .zip(out.chunks_exact_mut(inner))
        .enumerate()
    {
        let (s, z) = per_channel(ix % len);
        for (v, o) in block.iter().zip(out.iter_mut()) {
            *o = store((*v as f32 - z) * s);
        }
    }
}
