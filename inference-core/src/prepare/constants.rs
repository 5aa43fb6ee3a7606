//! Inputs the manifest fixes to a constant (`[model.inputs.sr] value = 16000`): the input
//! becomes an initializer of the packed graph, so tract folds what depends on it (an `If`
//! on a sample rate picks its branch at load) and requests no longer send it.

use std::collections::BTreeMap;

use serde_json::Value;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{type_proto, ModelProto, TensorProto};

/// Replaces each named graph input by an initializer holding `value`, typed as the input
/// declares and shaped as the value nests (a number is a scalar).
pub(crate) fn fix_inputs(
    proto: &mut ModelProto,
    constants: &BTreeMap<String, Value>,
) -> Result<(), String> {
    if constants.is_empty() {
        return Ok(());
    }
    let graph = proto.graph.as_mut().ok_or("the model has no graph")?;
    for (name, value) in constants {
        let Some(ix) = graph.input.iter().position(|i| &i.name == name) else {
            let inputs: Vec<&str> = graph.input.iter().map(|i| i.name.as_str()).collect();
            return Err(format!(
                "[model.inputs.{name}] value: the model has no input {name:?} (its inputs are {inputs:?})"
            ));
        };
        let input = graph.input.remove(ix);
        let Some(type_proto::Value::TensorType(tensor)) = input.r#type.and_then(|t| t.value) else {
            return Err(format!(
                "input {name:?} is not a tensor: it cannot be fixed"
            ));
        };
        let (dims, leaves) =
            flatten(value).map_err(|e| format!("[model.inputs.{name}] value: {e}"))?;
        if let Some(shape) = &tensor.shape {
            use tract_onnx::pb::tensor_shape_proto::dimension::Value as D;
            let declared: Vec<Option<i64>> = shape
                .dim
                .iter()
                .map(|d| match d.value {
                    Some(D::DimValue(n)) => Some(n),
                    _ => None,
                })
                .collect();
            let fits = declared.len() == dims.len()
                && declared
                    .iter()
                    .zip(&dims)
                    .all(|(want, got)| want.is_none_or(|w| w == *got));
            if !fits {
                return Err(format!(
                    "[model.inputs.{name}] value has shape {dims:?}, the input declares {declared:?}"
                ));
            }
        }
        let tensor = tensor_proto(name, tensor.elem_type, dims, &leaves)
            .map_err(|e| format!("[model.inputs.{name}] value: {e}"))?;
        graph.initializer.retain(|t| &t.name != name);
        graph.initializer.push(tensor);
    }
    Ok(())
}

/// A JSON value's dims (regular nesting) and its leaves in order.
fn flatten(value: &Value) -> Result<(Vec<i64>, Vec<&Value>), String> {
    fn walk<'a>(
        value: &'a Value,
        depth: usize,
        dims: &mut Vec<i64>,
        leaves: &mut Vec<(usize, &'a Value)>,
    ) -> Result<(), String> {
        match value {
            Value::Array(items) => {
                if dims.len() == depth {
                    dims.push(items.len() as i64);
                } else if dims.get(depth) != Some(&(items.len() as i64)) {
                    return Err("arrays of unequal lengths".into());
                }
                items
                    .iter()
                    .try_for_each(|v| walk(v, depth + 1, dims, leaves))
            }
            Value::Number(_) | Value::Bool(_) | Value::String(_) => {
                leaves.push((depth, value));
                Ok(())
            }
            _ => Err("expected a number, a boolean, a string or arrays of them".into()),
        }
    }
    let (mut dims, mut leaves) = (Vec::new(), Vec::new());
    walk(value, 0, &mut dims, &mut leaves)?;
    if leaves.iter().any(|(depth, _)| *depth != dims.len()) {
        return Err("arrays of unequal depth".into());
    }
    Ok((dims, leaves.into_iter().map(|(_, v)| v).collect()))
}

fn tensor_proto(
    name: &str,
    elem_type: i32,
    dims: Vec<i64>,
    leaves: &[&Value],
) -> Result<TensorProto, String> {
    let mut t = TensorProto {
        name: name.into(),
        dims,
        data_type: elem_type,
        ..Default::default()
    };
    let float = |v: &Value| v.as_f64().ok_or("expected numbers");
    let int = |v: &Value| -> Result<i64, &'static str> {
        match v {
            Value::Bool(b) => Ok(*b as i64),
            _ => v.as_i64().ok_or("expected whole numbers"),
        }
    };
    let data_type = DataType::try_from(elem_type).map_err(|_| "an unknown element type")?;
    match data_type {
        DataType::Float => {
            t.float_data = leaves
                .iter()
                .map(|v| float(v).map(|f| f as f32))
                .collect::<Result<_, _>>()?
        }
        DataType::Double => {
            t.double_data = leaves.iter().map(|v| float(v)).collect::<Result<_, _>>()?
        }
        DataType::Int64 => {
            t.int64_data = leaves.iter().map(|v| int(v)).collect::<Result<_, _>>()?
        }
        DataType::Int32
        | DataType::Int16
        | DataType::Int8
        | DataType::Uint8
        | DataType::Uint16
        | DataType::Bool => {
            t.int32_data = leaves
                .iter()
                .map(|v| int(v).map(|i| i as i32))
                .collect::<Result<_, _>>()?
        }
        DataType::String => {
            t.string_data = leaves
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(|s| s.as_bytes().to_vec())
                        .ok_or("expected strings")
                })
                .collect::<Result<_, _>>()?
        }
        other => return Err(format!("inputs of type {other:?} cannot be fixed")),
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_nest_into_dims() {
        assert_eq!(flatten(&json!(16000)).unwrap().0, Vec::<i64>::new());
        assert_eq!(flatten(&json!([[1, 2], [3, 4]])).unwrap().0, vec![2, 2]);
        assert!(flatten(&json!([[1, 2], [3]])).is_err());
        assert!(flatten(&json!([1, [2]])).is_err());
        assert!(flatten(&json!({"a": 1})).is_err());
    }

    #[test]
    fn an_int64_scalar_becomes_an_initializer() {
        let t = tensor_proto("sr", DataType::Int64 as i32, vec![], &[&json!(16000)]).unwrap();
        assert_eq!(t.int64_data, vec![16000]);
        assert!(tensor_proto("sr", DataType::Int64 as i32, vec![], &[&json!(1.5)]).is_err());
    }
}
