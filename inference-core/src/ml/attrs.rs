//! Reading `ai.onnx.ml` attributes, including opset 3's `*_as_tensor` double variants.

use tract_onnx::pb::{tensor_proto::DataType, NodeProto};
use tract_onnx::tract_hir::internal::*;

pub fn ints(node: &NodeProto, name: &str) -> TractResult<Vec<i64>> {
    Ok(node.get_attr_opt_vec::<i64>(name)?.unwrap_or_default())
}

pub fn floats(node: &NodeProto, name: &str) -> TractResult<Vec<f32>> {
    Ok(node.get_attr_opt_vec::<f32>(name)?.unwrap_or_default())
}

pub fn strings(node: &NodeProto, name: &str) -> TractResult<Vec<String>> {
    Ok(node.get_attr_opt_vec::<String>(name)?.unwrap_or_default())
}

pub fn string_or(node: &NodeProto, name: &str, default: &str) -> TractResult<String> {
    Ok(node
        .get_attr_opt::<String>(name)?
        .unwrap_or_else(|| default.to_string()))
}

/// `name` (floats) or `name_as_tensor` (a float or double tensor); the flag says the
/// values are doubles, which onnxruntime then also accumulates in double.
pub fn floats_or_tensor(node: &NodeProto, name: &str) -> TractResult<(Vec<f64>, bool)> {
    let tensor_name = format!("{name}_as_tensor");
    if let Some(t) = node.get_attr_opt::<&tract_onnx::pb::TensorProto>(&tensor_name)? {
        let le8 = |b: &[u8]| f64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        let le4 = |b: &[u8]| f32::from_le_bytes(b.try_into().unwrap_or([0; 4])) as f64;
        return if t.data_type == DataType::Double as i32 {
            let v = if t.raw_data.is_empty() {
                t.double_data.clone()
            } else {
                t.raw_data.chunks_exact(8).map(le8).collect()
            };
            Ok((v, true))
        } else if t.data_type == DataType::Float as i32 {
            let v = if t.raw_data.is_empty() {
                t.float_data.iter().map(|&f| f as f64).collect()
            } else {
                t.raw_data.chunks_exact(4).map(le4).collect()
            };
            Ok((v, false))
        } else {
            bail!("{tensor_name}: expected a float or double tensor")
        };
    }
    Ok((
        floats(node, name)?.into_iter().map(f64::from).collect(),
        false,
    ))
}

/// String class labels are rewritten to indices when a model is packed
/// (`prepare/string_labels.rs`); a classifier that still has them was not packed by pack-models.
pub fn no_strings(node: &NodeProto, op: &str, names: &[&str]) -> TractResult<()> {
    for name in names {
        if !strings(node, name)?.is_empty() {
            bail!(
                "{op} has string class labels ({name}), which packing rewrites to indices: pack the model with `cargo xtask pack-models`"
            );
        }
    }
    Ok(())
}

/// The `i`-th value of a per-column attribute that may also be a single broadcast value.
pub fn per_column<T: Copy>(values: &[T], i: usize) -> T {
    if values.len() == 1 {
        values[0]
    } else {
        values[i]
    }
}

/// A per-column attribute must have one value or one per column.
pub fn check_columns(op: &str, name: &str, len: usize, columns: usize) -> TractResult<()> {
    if len != 1 && len != columns {
        bail!("{op}: {name} has {len} values for {columns} columns");
    }
    Ok(())
}
