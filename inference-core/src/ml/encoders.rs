//! `OneHotEncoder` (integer or string categories) and `LabelEncoder` (integer, float and
//! string keys and values, ai.onnx.ml 2-3), as onnxruntime computes them. An unknown category
//! where the export says it is an error (`handle_unknown = "error"`, `zeros = 0`) is the
//! caller's mistake: [`UnknownCategory`], answered 400.

use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::attrs::{floats, floats_or_tensor, ints, strings};
use super::op::{Kernel, Out, Shape};
use crate::tensor_data::slice_of;

/// A value not among an encoder's categories, where the model says that is an error.
#[derive(Debug, thiserror::Error)]
#[error("{encoder}: {value} is not one of the categories the model was trained on ({count}), and it was exported to refuse unknown ones")]
pub struct UnknownCategory {
    encoder: &'static str,
    /// Quoted and bounded: it comes from the request.
    value: String,
    count: usize,
}

/// An encoder's input values: strings, or numbers (read as f64, as onnxruntime compares).
enum Values<'a> {
    Strings(&'a [String]),
    Numbers(Vec<f64>),
}

fn values(input: &Tensor) -> TractResult<Values<'_>> {
    if input.datum_type() == String::datum_type() {
        return Ok(Values::Strings(slice_of::<String>(input)?));
    }
    let numbers = input.cast_to::<f64>()?;
    Ok(Values::Numbers(slice_of::<f64>(&numbers)?.to_vec()))
}

#[derive(Debug)]
enum Cats {
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

#[derive(Debug)]
struct OneHot {
    cats: Cats,
    /// Unknown categories give all zeros (else they are an error).
    zeros: bool,
}

pub fn one_hot_encoder(node: &NodeProto) -> TractResult<Arc<dyn Kernel>> {
    let ints = ints(node, "cats_int64s")?;
    let strings = strings(node, "cats_strings")?;
    let cats = match (ints.is_empty(), strings.is_empty()) {
        (false, true) => Cats::Ints(ints),
        (true, false) => Cats::Strings(strings),
        _ => bail!("OneHotEncoder: exactly one of cats_int64s and cats_strings is needed"),
    };
    let zeros = node.get_attr_opt::<i64>("zeros")?.unwrap_or(1) != 0;
    Ok(Arc::new(OneHot { cats, zeros }))
}

impl OneHot {
    fn len(&self) -> usize {
        match &self.cats {
            Cats::Ints(c) => c.len(),
            Cats::Strings(c) => c.len(),
        }
    }
}

impl Kernel for OneHot {
    fn name(&self) -> &'static str {
        "OneHotEncoder"
    }

    fn outputs(&self) -> Vec<Out> {
        vec![Out {
            dt: f32::datum_type(),
            shape: Shape::InputPlus(self.len()),
        }]
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        let n = self.len();
        let found: Vec<(Option<usize>, String)> = match (values(input)?, &self.cats) {
            (Values::Strings(v), Cats::Strings(cats)) => v
                .iter()
                .map(|s| (cats.iter().position(|c| c == s), crate::error::quote(s)))
                .collect(),
            // Float inputs are truncated to integers, as onnxruntime does.
            (Values::Numbers(v), Cats::Ints(cats)) => v
                .iter()
                .map(|&x| (cats.iter().position(|&c| c == x as i64), x.to_string()))
                .collect(),
            _ => bail!("OneHotEncoder: the input's type does not match the categories' (strings or integers)"),
        };
        let mut out = vec![0.0f32; found.len() * n];
        for (i, (hit, shown)) in found.into_iter().enumerate() {
            match hit {
                Some(k) => out[i * n + k] = 1.0,
                None if self.zeros => {}
                None => {
                    return Err(UnknownCategory {
                        encoder: "OneHotEncoder",
                        value: shown,
                        count: n,
                    }
                    .into())
                }
            }
        }
        let mut shape = input.shape().to_vec();
        shape.push(n);
        Ok(tvec![Tensor::from_shape(&shape, &out)?])
    }
}

/// A `LabelEncoder`'s keys.
#[derive(Debug)]
enum Keys {
    Ints(Vec<i64>),
    Floats(Vec<f64>),
    Strings(Vec<String>),
}

/// A `LabelEncoder`'s values, with the default for a key not found.
#[derive(Debug)]
enum Mapped {
    Ints(Vec<i64>, i64),
    Floats(Vec<f32>, f32),
    Strings(Vec<String>, String),
}

#[derive(Debug)]
struct LabelEncoder {
    keys: Keys,
    values: Mapped,
}

pub fn label_encoder(node: &NodeProto) -> TractResult<Arc<dyn Kernel>> {
    if node
        .get_attr_opt::<&tract_onnx::pb::TensorProto>("keys_tensor")?
        .is_some()
        || node
            .get_attr_opt::<&tract_onnx::pb::TensorProto>("values_tensor")?
            .is_some()
    {
        bail!("LabelEncoder: keys_tensor/values_tensor (ai.onnx.ml 4) are not supported; use keys_int64s/keys_floats/keys_strings");
    }
    let int_keys = ints(node, "keys_int64s")?;
    let (float_keys, _) = floats_or_tensor(node, "keys_floats")?;
    let string_keys = strings(node, "keys_strings")?;
    let keys = match (
        int_keys.is_empty(),
        float_keys.is_empty(),
        string_keys.is_empty(),
    ) {
        (false, true, true) => Keys::Ints(int_keys),
        (true, false, true) => Keys::Floats(float_keys),
        (true, true, false) => Keys::Strings(string_keys),
        _ => bail!(
            "LabelEncoder: exactly one of keys_int64s, keys_floats and keys_strings is needed"
        ),
    };
    let int_values = ints(node, "values_int64s")?;
    let float_values = floats(node, "values_floats")?;
    let string_values = strings(node, "values_strings")?;
    let values = match (
        int_values.is_empty(),
        float_values.is_empty(),
        string_values.is_empty(),
    ) {
        (false, true, true) => Mapped::Ints(
            int_values,
            node.get_attr_opt::<i64>("default_int64")?.unwrap_or(-1),
        ),
        (true, false, true) => Mapped::Floats(
            float_values,
            node.get_attr_opt::<f32>("default_float")?.unwrap_or(-0.0),
        ),
        (true, true, false) => Mapped::Strings(
            string_values,
            node.get_attr_opt::<String>("default_string")?
                .unwrap_or_else(|| "_Unused".into()),
        ),
        _ => bail!(
            "LabelEncoder: exactly one of values_int64s, values_floats and values_strings is needed"
        ),
    };
    let key_count = match &keys {
        Keys::Ints(k) => k.len(),
        Keys::Floats(k) => k.len(),
        Keys::Strings(k) => k.len(),
    };
    let value_count = match &values {
        Mapped::Ints(v, _) => v.len(),
        Mapped::Floats(v, _) => v.len(),
        Mapped::Strings(v, _) => v.len(),
    };
    if key_count != value_count {
        bail!("LabelEncoder: {key_count} keys but {value_count} values");
    }
    Ok(Arc::new(LabelEncoder { keys, values }))
}

impl Kernel for LabelEncoder {
    fn name(&self) -> &'static str {
        "LabelEncoder"
    }

    fn outputs(&self) -> Vec<Out> {
        let dt = match self.values {
            Mapped::Ints(..) => i64::datum_type(),
            Mapped::Floats(..) => f32::datum_type(),
            Mapped::Strings(..) => String::datum_type(),
        };
        vec![Out {
            dt,
            shape: Shape::SameAsInput,
        }]
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        let hits: Vec<Option<usize>> = match (values(input)?, &self.keys) {
            (Values::Strings(v), Keys::Strings(keys)) => {
                v.iter().map(|s| keys.iter().position(|k| k == s)).collect()
            }
            (Values::Numbers(v), Keys::Ints(keys)) => v
                .iter()
                .map(|&x| keys.iter().position(|&k| k == x as i64))
                .collect(),
            // NaN keys match NaN inputs.
            (Values::Numbers(v), Keys::Floats(keys)) => v
                .iter()
                .map(|&x| {
                    keys.iter()
                        .position(|&k| k == x || (k.is_nan() && x.is_nan()))
                })
                .collect(),
            _ => bail!(
                "LabelEncoder: the input's type does not match the keys' (strings or numbers)"
            ),
        };
        let shape = input.shape().to_vec();
        let out = match &self.values {
            Mapped::Ints(map, default) => {
                let v: Vec<i64> = hits
                    .iter()
                    .map(|h| h.map_or(*default, |i| map[i]))
                    .collect();
                Tensor::from_shape(&shape, &v)?
            }
            Mapped::Floats(map, default) => {
                let v: Vec<f32> = hits
                    .iter()
                    .map(|h| h.map_or(*default, |i| map[i]))
                    .collect();
                Tensor::from_shape(&shape, &v)?
            }
            Mapped::Strings(map, default) => {
                let v: Vec<String> = hits
                    .iter()
                    .map(|h| h.map_or_else(|| default.clone(), |i| map[i].clone()))
                    .collect();
                tract_ndarray::ArrayD::from_shape_vec(shape, v)?.into_tensor()
            }
        };
        Ok(tvec![out])
    }
}
