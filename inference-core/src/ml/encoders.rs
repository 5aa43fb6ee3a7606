//! `OneHotEncoder` (integer categories) and `LabelEncoder` (integer and float maps,
//! ai.onnx.ml 2-4). String categories and maps are out of scope and fail at load, named.

use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::attrs::{floats, floats_or_tensor, ints, no_strings};
use super::op::{Kernel, Out, Shape};

#[derive(Debug)]
struct OneHot {
    cats: Vec<i64>,
    /// Unknown categories give all zeros (else they are an error).
    zeros: bool,
}

pub fn one_hot_encoder(node: &NodeProto) -> TractResult<Arc<dyn Kernel>> {
    no_strings(node, "OneHotEncoder", &["cats_strings"])?;
    let cats = ints(node, "cats_int64s")?;
    if cats.is_empty() {
        bail!("OneHotEncoder: no cats_int64s");
    }
    let zeros = node.get_attr_opt::<i64>("zeros")?.unwrap_or(1) != 0;
    Ok(Arc::new(OneHot { cats, zeros }))
}

impl Kernel for OneHot {
    fn name(&self) -> &'static str {
        "OneHotEncoder"
    }

    fn outputs(&self) -> Vec<Out> {
        vec![Out {
            dt: f32::datum_type(),
            shape: Shape::InputPlus(self.cats.len()),
        }]
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        let values = input.cast_to::<f64>()?;
        let values = values.to_plain_array_view::<f64>()?;
        let n = self.cats.len();
        let mut out = vec![0.0f32; values.len() * n];
        for (i, &v) in values.iter().enumerate() {
            // Float inputs are truncated to integers, as onnxruntime does.
            match self.cats.iter().position(|&c| c == v as i64) {
                Some(k) => out[i * n + k] = 1.0,
                None if self.zeros => {}
                None => bail!("OneHotEncoder: {v} is not one of the categories and zeros = 0"),
            }
        }
        let mut shape = input.shape().to_vec();
        shape.push(n);
        Ok(tvec![Tensor::from_shape(&shape, &out)?])
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Key {
    Int,
    Float,
}

#[derive(Debug)]
struct LabelEncoder {
    key: Key,
    int_keys: Vec<i64>,
    float_keys: Vec<f64>,
    int_values: Option<Vec<i64>>,
    float_values: Vec<f32>,
    default_int: i64,
    default_float: f32,
}

pub fn label_encoder(node: &NodeProto) -> TractResult<Arc<dyn Kernel>> {
    no_strings(
        node,
        "LabelEncoder",
        &["keys_strings", "values_strings", "classes_strings"],
    )?;
    if node
        .get_attr_opt::<&tract_onnx::pb::TensorProto>("keys_tensor")?
        .is_some()
        || node
            .get_attr_opt::<&tract_onnx::pb::TensorProto>("values_tensor")?
            .is_some()
    {
        bail!("LabelEncoder: keys_tensor/values_tensor (ai.onnx.ml 4) are not supported; use keys_int64s/keys_floats");
    }
    let int_keys = ints(node, "keys_int64s")?;
    let (float_keys, _) = floats_or_tensor(node, "keys_floats")?;
    let int_values = ints(node, "values_int64s")?;
    let float_values = floats(node, "values_floats")?;
    let key = match (int_keys.is_empty(), float_keys.is_empty()) {
        (false, true) => Key::Int,
        (true, false) => Key::Float,
        _ => bail!("LabelEncoder: exactly one of keys_int64s and keys_floats is needed"),
    };
    let keys = int_keys.len().max(float_keys.len());
    let int_values = match (int_values.is_empty(), float_values.is_empty()) {
        (false, true) => Some(int_values),
        (true, false) => None,
        _ => bail!("LabelEncoder: exactly one of values_int64s and values_floats is needed"),
    };
    let values = int_values
        .as_ref()
        .map(Vec::len)
        .unwrap_or(float_values.len());
    if values != keys {
        bail!("LabelEncoder: {keys} keys but {values} values");
    }
    Ok(Arc::new(LabelEncoder {
        key,
        int_keys,
        float_keys,
        int_values,
        float_values,
        default_int: node.get_attr_opt::<i64>("default_int64")?.unwrap_or(-1),
        default_float: node.get_attr_opt::<f32>("default_float")?.unwrap_or(-0.0),
    }))
}

impl LabelEncoder {
    fn find(&self, v: f64) -> Option<usize> {
        match self.key {
            Key::Int => self.int_keys.iter().position(|&k| k == v as i64),
            // NaN keys match NaN inputs.
            Key::Float => self
                .float_keys
                .iter()
                .position(|&k| k == v || (k.is_nan() && v.is_nan())),
        }
    }
}

impl Kernel for LabelEncoder {
    fn name(&self) -> &'static str {
        "LabelEncoder"
    }

    fn outputs(&self) -> Vec<Out> {
        let dt = if self.int_values.is_some() {
            i64::datum_type()
        } else {
            f32::datum_type()
        };
        vec![Out {
            dt,
            shape: Shape::SameAsInput,
        }]
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        let values = input.cast_to::<f64>()?;
        let values = values.to_plain_array_view::<f64>()?;
        let shape = input.shape().to_vec();
        let hits: Vec<Option<usize>> = values.iter().map(|&v| self.find(v)).collect();
        let out = match &self.int_values {
            Some(map) => {
                let v: Vec<i64> = hits
                    .iter()
                    .map(|h| h.map(|i| map[i]).unwrap_or(self.default_int))
                    .collect();
                Tensor::from_shape(&shape, &v)?
            }
            None => {
                let v: Vec<f32> = hits
                    .iter()
                    .map(|h| {
                        h.map(|i| self.float_values[i])
                            .unwrap_or(self.default_float)
                    })
                    .collect();
                Tensor::from_shape(&shape, &v)?
            }
        };
        Ok(tvec![out])
    }
}
