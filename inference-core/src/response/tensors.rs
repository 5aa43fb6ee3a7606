//! Tensors to an answer's JSON: nested arrays, floats in their shortest form, NaN and
//! infinities as `null`.

use serde_json::{Number, Value};
use tract_onnx::prelude::*;

use crate::tensor_data::slice_of;

fn float_value(f: f64) -> Value {
    // NaN and infinities have no JSON form.
    Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// An f32 as its shortest decimal form (0.9988095, not 0.9988095164299012): widening to
/// f64 first would print digits the model never computed.
fn f32_value(v: f32) -> Value {
    if !v.is_finite() {
        return Value::Null;
    }
    v.to_string()
        .parse::<f64>()
        .map(float_value)
        .unwrap_or(Value::Null)
}

fn nest(shape: &[usize], it: &mut impl Iterator<Item = Value>) -> Value {
    match shape.split_first() {
        None => it.next().unwrap_or(Value::Null),
        Some((n, rest)) => Value::Array((0..*n).map(|_| nest(rest, it)).collect()),
    }
}

fn flat_values(t: &Tensor) -> Result<Vec<Value>, String> {
    fn map<T: Datum + Copy>(t: &Tensor, f: impl Fn(T) -> Value) -> Result<Vec<Value>, String> {
        Ok(slice_of::<T>(t)
            .map_err(|e| format!("{e:#}"))?
            .iter()
            .map(|v| f(*v))
            .collect())
    }
    match t.datum_type() {
        DatumType::F32 => map::<f32>(t, f32_value),
        DatumType::F64 => map::<f64>(t, float_value),
        DatumType::F16 => {
            let t = t.cast_to::<f32>().map_err(|e| format!("{e:#}"))?;
            map::<f32>(&t, f32_value)
        }
        DatumType::I8 => map::<i8>(t, Value::from),
        DatumType::I16 => map::<i16>(t, Value::from),
        DatumType::I32 => map::<i32>(t, Value::from),
        DatumType::I64 => map::<i64>(t, Value::from),
        DatumType::U8 => map::<u8>(t, Value::from),
        DatumType::U16 => map::<u16>(t, Value::from),
        DatumType::U32 => map::<u32>(t, Value::from),
        DatumType::U64 => map::<u64>(t, Value::from),
        DatumType::Bool => map::<bool>(t, Value::from),
        DatumType::TDim => Ok(slice_of::<TDim>(t)
            .map_err(|e| format!("{e:#}"))?
            .iter()
            .map(|d| {
                d.to_i64()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::from(d.to_string()))
            })
            .collect()),
        DatumType::String => Ok(slice_of::<String>(t)
            .map_err(|e| format!("{e:#}"))?
            .iter()
            .map(|s| Value::from(s.as_str()))
            .collect()),
        other => Err(format!("output type {other:?} cannot be encoded as JSON")),
    }
}

/// Encodes a tensor as a nested JSON array (a scalar for rank 0).
pub fn tensor_to_json(t: &Tensor) -> Result<Value, String> {
    let flat = flat_values(t)?;
    Ok(nest(t.shape(), &mut flat.into_iter()))
}
