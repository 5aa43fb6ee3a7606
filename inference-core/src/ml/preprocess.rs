//! Element-wise preprocessing: `Scaler`, `Binarizer` and `Imputer`, as scikit-learn
//! pipelines export them (StandardScaler/MinMaxScaler, Binarizer, SimpleImputer).

use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::attrs::{check_columns, floats, ints, per_column};
use super::op::{Kernel, Out, Shape};

fn last_dim(input: &Tensor) -> usize {
    input.shape().last().copied().unwrap_or(1)
}

/// `(x - offset) * scale` per column, float32 out.
#[derive(Debug)]
struct Scaler {
    offset: Vec<f32>,
    scale: Vec<f32>,
}

pub fn scaler(node: &NodeProto) -> TractResult<Arc<dyn Kernel>> {
    let mut offset = floats(node, "offset")?;
    let mut scale = floats(node, "scale")?;
    if offset.is_empty() {
        offset.push(0.0);
    }
    if scale.is_empty() {
        scale.push(1.0);
    }
    Ok(Arc::new(Scaler { offset, scale }))
}

impl Kernel for Scaler {
    fn name(&self) -> &'static str {
        "Scaler"
    }

    fn outputs(&self) -> Vec<Out> {
        vec![Out {
            dt: f32::datum_type(),
            shape: Shape::SameAsInput,
        }]
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        let cols = last_dim(input);
        check_columns("Scaler", "offset", self.offset.len(), cols)?;
        check_columns("Scaler", "scale", self.scale.len(), cols)?;
        let mut out = input.cast_to::<f32>()?.into_owned();
        for (i, v) in out.to_plain_array_view_mut::<f32>()?.iter_mut().enumerate() {
            let c = i % cols.max(1);
            *v = (*v - per_column(&self.offset, c)) * per_column(&self.scale, c);
        }
        Ok(tvec![out])
    }
}

/// 1 above the threshold, 0 otherwise (NaN stays NaN), in the input's type.
#[derive(Debug)]
struct Binarizer {
    threshold: f32,
}

pub fn binarizer(node: &NodeProto) -> TractResult<Arc<dyn Kernel>> {
    let threshold = node.get_attr_opt::<f32>("threshold")?.unwrap_or(0.0);
    Ok(Arc::new(Binarizer { threshold }))
}

impl Kernel for Binarizer {
    fn name(&self) -> &'static str {
        "Binarizer"
    }

    fn outputs(&self) -> Vec<Out> {
        vec![Out {
            dt: f32::datum_type(),
            shape: Shape::SameAsInput,
        }]
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        let mut out = input.cast_to::<f32>()?.into_owned();
        for v in out.to_plain_array_view_mut::<f32>()?.iter_mut() {
            if !v.is_nan() {
                *v = if *v > self.threshold { 1.0 } else { 0.0 };
            }
        }
        Ok(tvec![out])
    }
}

/// Replaces missing values (NaN, or `replaced_value_*`) with a per-column value.
#[derive(Debug)]
enum Imputer {
    Float { imputed: Vec<f32>, replaced: f32 },
    Int { imputed: Vec<i64>, replaced: i64 },
}

pub fn imputer(node: &NodeProto) -> TractResult<Arc<dyn Kernel>> {
    let floats_v = floats(node, "imputed_value_floats")?;
    let ints_v = ints(node, "imputed_value_int64s")?;
    let kernel = match (floats_v.is_empty(), ints_v.is_empty()) {
        (false, true) => Imputer::Float {
            imputed: floats_v,
            replaced: node
                .get_attr_opt::<f32>("replaced_value_float")?
                .unwrap_or(0.0),
        },
        (true, false) => Imputer::Int {
            imputed: ints_v,
            replaced: node
                .get_attr_opt::<i64>("replaced_value_int64")?
                .unwrap_or(0),
        },
        _ => {
            bail!("Imputer: exactly one of imputed_value_floats and imputed_value_int64s is needed")
        }
    };
    Ok(Arc::new(kernel))
}

impl Kernel for Imputer {
    fn name(&self) -> &'static str {
        "Imputer"
    }

    fn outputs(&self) -> Vec<Out> {
        let dt = match self {
            Imputer::Float { .. } => f32::datum_type(),
            Imputer::Int { .. } => i64::datum_type(),
        };
        vec![Out {
            dt,
            shape: Shape::SameAsInput,
        }]
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        let cols = last_dim(input).max(1);
        match self {
            Imputer::Float { imputed, replaced } => {
                check_columns("Imputer", "imputed_value_floats", imputed.len(), cols)?;
                let mut out = input.cast_to::<f32>()?.into_owned();
                for (i, v) in out.to_plain_array_view_mut::<f32>()?.iter_mut().enumerate() {
                    let missing = if replaced.is_nan() {
                        v.is_nan()
                    } else {
                        *v == *replaced
                    };
                    if missing {
                        *v = per_column(imputed, i % cols);
                    }
                }
                Ok(tvec![out])
            }
            Imputer::Int { imputed, replaced } => {
                check_columns("Imputer", "imputed_value_int64s", imputed.len(), cols)?;
                let mut out = input.cast_to::<i64>()?.into_owned();
                for (i, v) in out.to_plain_array_view_mut::<i64>()?.iter_mut().enumerate() {
                    if *v == *replaced {
                        *v = per_column(imputed, i % cols);
                    }
                }
                Ok(tvec![out])
            }
        }
    }
}
