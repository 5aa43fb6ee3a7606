//! A request's JSON nested arrays to tensors, checked against the served signature (the
//! answer's way back is `crate::response::tensors`).

use std::collections::HashMap;

use model_lock::{DType, Dim, TensorSpec};
use serde_json::Value;
use tract_onnx::prelude::*;

use crate::error::RequestError;

/// Symbol values seen so far in one request (`batch` must agree across inputs).
pub type SymbolValues = HashMap<String, usize>;

/// The longest string a string input takes (a category, a word): longer is refused before
/// the model sees it.
pub const MAX_STRING_CHARS: usize = 1024;

/// Depth of the leading chain of arrays: `[[1, 2]]` is 2, `3` is 0.
pub fn nesting_depth(value: &Value) -> usize {
    let mut depth = 0;
    let mut v = value;
    while let Value::Array(items) = v {
        depth += 1;
        match items.first() {
            Some(first) => v = first,
            None => break,
        }
    }
    depth
}

/// "a number", "an array", …: what a JSON value is, for error messages.
pub(crate) fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn shape_text(shape: &[Dim]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

/// Walks the nested arrays, checking they are rectangular, and collects the leaves.
fn flatten<'a>(
    value: &'a Value,
    depth: usize,
    rank: usize,
    path: &mut String,
    shape: &mut Vec<usize>,
    leaves: &mut Vec<&'a Value>,
    expected: &str,
) -> Result<(), RequestError> {
    if depth == rank {
        if value.is_array() {
            return Err(RequestError::bad(format!(
                "{path}: expected a scalar at this depth (nested array of rank {rank}, shape {expected}), found an array"
            )));
        }
        leaves.push(value);
        return Ok(());
    }
    let Value::Array(items) = value else {
        return Err(RequestError::bad(format!(
            "{path}: expected an array (nested array of rank {rank}, shape {expected}), found {}",
            describe(value)
        )));
    };
    if shape.len() == depth {
        shape.push(items.len());
    } else if shape[depth] != items.len() {
        return Err(RequestError::bad(format!(
            "{path}: ragged array: has {} elements where earlier rows at this depth have {}",
            items.len(),
            shape[depth]
        )));
    }
    for (i, item) in items.iter().enumerate() {
        let len = path.len();
        path.push_str(&format!("[{i}]"));
        flatten(item, depth + 1, rank, path, shape, leaves, expected)?;
        path.truncate(len);
    }
    if items.is_empty() && shape.len() == depth + 1 {
        // An empty axis: the deeper dims cannot be read from data.
        while shape.len() < rank {
            shape.push(0);
        }
    }
    Ok(())
}

fn index_path(field: &str, shape: &[usize], flat: usize) -> String {
    let mut idx = vec![0; shape.len()];
    let mut rest = flat;
    for (axis, dim) in shape.iter().enumerate().rev() {
        if *dim > 0 {
            idx[axis] = rest % dim;
            rest /= dim;
        }
    }
    let mut p = field.to_string();
    for i in idx {
        p.push_str(&format!("[{i}]"));
    }
    p
}

fn parse_float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        // JSON has no NaN/Infinity literals; accept the spellings Python and JS clients use.
        Value::String(s) => match s.as_str() {
            "NaN" | "nan" => Some(f64::NAN),
            "Infinity" | "inf" | "+Infinity" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

fn parse_int(v: &Value, min: i128, max: i128) -> Result<i128, String> {
    let n = match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i as i128
            } else if let Some(u) = n.as_u64() {
                u as i128
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() != 0.0 || !f.is_finite() {
                    return Err(format!("expected an integer, found {f}"));
                }
                if f.abs() > 9.0e18 {
                    return Err(format!("{f} is out of range"));
                }
                f as i128
            }
        }
        Value::String(s) if parse_float(v).is_some() => {
            return Err(format!("{s} is not valid for an integer input"))
        }
        other => return Err(format!("expected an integer, found {}", describe(other))),
    };
    if n < min || n > max {
        return Err(format!("{n} is out of range [{min}, {max}]"));
    }
    Ok(n)
}

macro_rules! int_tensor {
    ($t:ty, $leaves:expr, $shape:expr, $field:expr, $dt:expr) => {{
        let mut data: Vec<$t> = Vec::with_capacity($leaves.len());
        for (i, v) in $leaves.iter().enumerate() {
            let n = parse_int(v, <$t>::MIN as i128, <$t>::MAX as i128).map_err(|e| {
                RequestError::bad(format!(
                    "{}: {e} (the model takes {})",
                    index_path($field, $shape, i),
                    $dt
                ))
            })?;
            data.push(n as $t);
        }
        Tensor::from_shape($shape, &data)
    }};
}

/// The largest finite f16.
const F16_MAX: f64 = 65504.0;

macro_rules! float_tensor {
    ($t:ty, $max:expr, $leaves:expr, $shape:expr, $field:expr, $dt:expr) => {{
        let mut data: Vec<$t> = Vec::with_capacity($leaves.len());
        for (i, v) in $leaves.iter().enumerate() {
            let f = parse_float(v).ok_or_else(|| {
                RequestError::bad(format!(
                    "{}: expected a number (the model takes {}), found {}",
                    index_path($field, $shape, i),
                    $dt,
                    describe(v)
                ))
            })?;
            // A finite literal the type cannot hold would silently become ±inf.
            if f.is_finite() && f.abs() > $max {
                return Err(RequestError::bad(format!(
                    "{}: {f:e} is out of range for {} (largest magnitude {:e}); send \"Infinity\" or \"-Infinity\" if that is meant",
                    index_path($field, $shape, i),
                    $dt,
                    $max
                )));
            }
            data.push(f as $t);
        }
        Tensor::from_shape($shape, &data)
    }};
}

/// Converts `value` into a tensor of the input's type, checking rank, fixed dims and the
/// consistency of symbolic dims across inputs. `field` names the input in messages.
pub fn json_to_tensor(
    field: &str,
    value: &Value,
    spec: &TensorSpec,
    symbols: &mut SymbolValues,
) -> Result<Tensor, RequestError> {
    let rank = spec.shape.len();
    let expected = shape_text(&spec.shape);
    let mut shape = Vec::with_capacity(rank);
    let mut leaves = Vec::new();
    let mut path = field.to_string();
    flatten(
        value,
        0,
        rank,
        &mut path,
        &mut shape,
        &mut leaves,
        &expected,
    )?;
    for (axis, (dim, got)) in spec.shape.iter().zip(&shape).enumerate() {
        match dim {
            Dim::Fixed(n) if *n as usize != *got => {
                return Err(RequestError::bad(format!(
                    "{field}: axis {axis} has size {got}, but the model expects {n} (shape {expected})"
                )));
            }
            Dim::Fixed(_) => {}
            Dim::Symbol(name) => {
                if *got == 0 {
                    return Err(RequestError::bad(format!(
                        "{field}: axis {axis} ({name}) is empty"
                    )));
                }
                if let Some(prev) = symbols.insert(name.clone(), *got) {
                    if prev != *got {
                        return Err(RequestError::bad(format!(
                            "{field}: axis {axis} ({name}) has size {got}, but another input gave {name} = {prev}"
                        )));
                    }
                }
            }
        }
    }
    let dt = spec.dtype;
    let tensor = match dt {
        DType::F32 => float_tensor!(f32, f32::MAX as f64, leaves, &shape, field, dt),
        DType::F64 => float_tensor!(f64, f64::MAX, leaves, &shape, field, dt),
        DType::F16 => float_tensor!(f32, F16_MAX, leaves, &shape, field, dt)
            .and_then(|t| t.cast_to_dt(DatumType::F16).map(|t| t.into_owned())),
        DType::I8 => int_tensor!(i8, leaves, &shape, field, dt),
        DType::I16 => int_tensor!(i16, leaves, &shape, field, dt),
        DType::I32 => int_tensor!(i32, leaves, &shape, field, dt),
        DType::I64 => int_tensor!(i64, leaves, &shape, field, dt),
        DType::U8 => int_tensor!(u8, leaves, &shape, field, dt),
        DType::U16 => int_tensor!(u16, leaves, &shape, field, dt),
        DType::U32 => int_tensor!(u32, leaves, &shape, field, dt),
        DType::U64 => int_tensor!(u64, leaves, &shape, field, dt),
        DType::Bool => {
            let mut data = Vec::with_capacity(leaves.len());
            for (i, v) in leaves.iter().enumerate() {
                data.push(match v {
                    Value::Bool(b) => *b,
                    Value::Number(n) if n.as_u64() == Some(0) => false,
                    Value::Number(n) if n.as_u64() == Some(1) => true,
                    other => {
                        return Err(RequestError::bad(format!(
                            "{}: expected true/false (the model takes bool), found {}",
                            index_path(field, &shape, i),
                            describe(other)
                        )))
                    }
                });
            }
            Tensor::from_shape(&shape, &data)
        }
        DType::String => {
            let mut data = Vec::with_capacity(leaves.len());
            for (i, v) in leaves.iter().enumerate() {
                let Value::String(text) = v else {
                    return Err(RequestError::bad(format!(
                        "{}: expected a string (the model takes strings: categories, words), found {}",
                        index_path(field, &shape, i),
                        describe(v)
                    )));
                };
                if text.len() > MAX_STRING_CHARS && text.chars().count() > MAX_STRING_CHARS {
                    return Err(RequestError::OverLimit(format!(
                        "{}: a string of {} characters; string inputs take at most {MAX_STRING_CHARS}",
                        index_path(field, &shape, i),
                        text.chars().count()
                    )));
                }
                data.push(text.clone());
            }
            tract_ndarray::ArrayD::from_shape_vec(shape.clone(), data)
                .map(|a| a.into_tensor())
                .map_err(|e| e.into())
        }
        DType::Tdim => {
            return Err(RequestError::bad(format!(
                "{field}: inputs of type {dt} are not supported"
            )))
        }
    };
    tensor.map_err(|e| RequestError::Internal(format!("building tensor for {field}: {e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::tensors::tensor_to_json;
    use crate::tensor_data::slice_of;
    use serde_json::json;

    fn spec(dtype: DType, shape: Vec<Dim>) -> TensorSpec {
        TensorSpec {
            name: "x".into(),
            dtype,
            shape,
        }
    }

    #[test]
    fn roundtrip_and_errors() {
        let s = spec(DType::F32, vec![Dim::Symbol("batch".into()), Dim::Fixed(2)]);
        let mut syms = SymbolValues::new();
        let t = json_to_tensor("x", &json!([[1, 2.5], [3, "NaN"]]), &s, &mut syms).unwrap();
        assert_eq!(t.shape(), &[2, 2]);
        assert_eq!(
            tensor_to_json(&t).unwrap(),
            json!([[1.0, 2.5], [3.0, null]])
        );
        assert_eq!(syms["batch"], 2);

        let err = |v: Value, s: &TensorSpec| {
            json_to_tensor("x", &v, s, &mut SymbolValues::new())
                .unwrap_err()
                .to_string()
        };
        assert!(err(json!([[1, 2], [3]]), &s).contains("ragged"));
        assert!(err(json!([[1, 2, 3]]), &s).contains("expects 2"));
        assert!(err(json!([1, 2]), &s).contains("expected an array"));
        assert!(err(json!([[[1], [2]]]), &s).contains("expected a scalar"));
        assert!(err(json!([[1, "a"]]), &s).contains("x[0][1]"));
        let i = spec(DType::I64, vec![Dim::Fixed(2)]);
        assert!(err(json!([1, 1.5]), &i).contains("expected an integer"));
        assert!(err(json!([1, "NaN"]), &i).contains("not valid for an integer"));
        let u = spec(DType::U8, vec![Dim::Fixed(1)]);
        assert!(err(json!([300]), &u).contains("out of range"));
        // A literal beyond f32 is refused, not turned into infinity; "Infinity" is explicit.
        assert!(err(json!([[1e39, 1]]), &s).contains("out of range for f32"));
        assert!(json_to_tensor(
            "x",
            &json!([[3.4e38, "-Infinity"]]),
            &s,
            &mut SymbolValues::new()
        )
        .is_ok());
        let h = spec(DType::F16, vec![Dim::Fixed(1)]);
        assert!(err(json!([70000]), &h).contains("out of range"));
        assert!(err(json!([[]]), &s).contains("empty") || err(json!([]), &s).contains("empty"));
    }

    #[test]
    fn string_inputs_take_strings_up_to_the_cap() {
        let spec = spec(
            DType::String,
            vec![Dim::Symbol("batch".into()), Dim::Fixed(1)],
        );
        let t = json_to_tensor(
            "city",
            &json!([["Paris"], ["Saint-Étienne"]]),
            &spec,
            &mut SymbolValues::new(),
        )
        .unwrap();
        assert_eq!(t.shape(), &[2, 1]);
        assert_eq!(slice_of::<String>(&t).unwrap()[1], "Saint-Étienne");
        assert_eq!(
            tensor_to_json(&t).unwrap(),
            json!([["Paris"], ["Saint-Étienne"]])
        );
        let e = json_to_tensor("city", &json!([[1]]), &spec, &mut SymbolValues::new()).unwrap_err();
        assert!(
            e.to_string().contains("city[0][0]: expected a string"),
            "{e}"
        );
        let long = "é".repeat(MAX_STRING_CHARS + 1);
        let e =
            json_to_tensor("city", &json!([[long]]), &spec, &mut SymbolValues::new()).unwrap_err();
        assert_eq!(e.status(), 413, "{e}");
        // At the cap, counted in characters, not bytes.
        let at_cap = "é".repeat(MAX_STRING_CHARS);
        assert!(
            json_to_tensor("city", &json!([[at_cap]]), &spec, &mut SymbolValues::new()).is_ok()
        );
    }

    #[test]
    fn depth() {
        assert_eq!(nesting_depth(&json!(1)), 0);
        assert_eq!(nesting_depth(&json!([[1], [2]])), 2);
    }
}
