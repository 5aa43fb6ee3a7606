//! One tract operator type for every kernel here: a kernel says what it outputs and how to
//! compute it from its single input; `MlOp` does the tract plumbing (inference rules,
//! typed facts, evaluation).

use std::sync::Arc;

use tract_onnx::tract_hir::internal::*;

/// How an output's shape follows from the input's.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    SameAsInput,
    /// `[N, k]` for an `[N, F]` input.
    Rows(usize),
    /// `[N]` for an `[N, F]` input.
    RowsOnly,
    /// The input's shape with a trailing axis of `k`.
    InputPlus(usize),
}

#[derive(Clone, Copy, Debug)]
pub struct Out {
    pub dt: DatumType,
    pub shape: Shape,
}

pub trait Kernel: std::fmt::Debug + Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn outputs(&self) -> Vec<Out>;
    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>>;
}

/// A kernel, and the ONNX node it was parsed from: the compiled form stores the node and
/// parses it again at load, so a kernel needs no serializer of its own.
#[derive(Clone, Debug)]
pub struct MlOp {
    pub kernel: Arc<dyn Kernel>,
    /// The node, protobuf-encoded, its names and wiring cleared (`u8`, rank 1).
    pub source: Arc<Tensor>,
}

impl PartialEq for MlOp {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.kernel, &other.kernel)
    }
}
impl Eq for MlOp {}

impl Op for MlOp {
    fn name(&self) -> StaticName {
        self.kernel.name().into()
    }
    op_as_typed_op!();
}

impl EvalOp for MlOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        Ok(self
            .kernel
            .eval(&input)?
            .into_iter()
            .map(|t| t.into_tvalue())
            .collect())
    }
}

impl TypedOp for MlOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let shape: TVec<TDim> = inputs[0].shape.iter().cloned().collect();
        let rows = || -> TractResult<TDim> {
            if shape.len() != 2 {
                bail!(
                    "{} expects a [rows, features] input, got rank {}",
                    self.kernel.name(),
                    shape.len()
                );
            }
            Ok(shape[0].clone())
        };
        self.kernel
            .outputs()
            .iter()
            .map(|o| {
                let dims: TVec<TDim> = match o.shape {
                    Shape::SameAsInput => shape.clone(),
                    Shape::Rows(k) => tvec![rows()?, k.to_dim()],
                    Shape::RowsOnly => tvec![rows()?],
                    Shape::InputPlus(k) => shape.iter().cloned().chain([k.to_dim()]).collect(),
                };
                Ok(TypedFact::dt_shape(o.dt, dims))
            })
            .collect()
    }

    as_op!();
}

impl Expansion for MlOp {
    fn name(&self) -> StaticName {
        self.kernel.name().into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(self.kernel.outputs().len())
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        let outs = self.kernel.outputs();
        check_output_arity(outputs, outs.len())?;
        for (o, proxy) in outs.iter().zip(outputs) {
            s.equals(&proxy.datum_type, o.dt)?;
            match o.shape {
                Shape::SameAsInput => s.equals(&proxy.shape, &inputs[0].shape)?,
                Shape::Rows(k) => {
                    s.equals(&inputs[0].rank, 2)?;
                    s.equals(&proxy.rank, 2)?;
                    s.equals(&proxy.shape[0], &inputs[0].shape[0])?;
                    s.equals(&proxy.shape[1], k.to_dim())?;
                }
                Shape::RowsOnly => {
                    s.equals(&inputs[0].rank, 2)?;
                    s.equals(&proxy.rank, 1)?;
                    s.equals(&proxy.shape[0], &inputs[0].shape[0])?;
                }
                Shape::InputPlus(k) => {
                    s.equals(&proxy.rank, inputs[0].rank.bex() + 1)?;
                    s.given(&inputs[0].shape, move |s, shape| {
                        let mut dims: TVec<TDim> = shape.into_iter().collect();
                        dims.push(k.to_dim());
                        s.equals(&proxy.shape, dims)
                    })?;
                }
            }
        }
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

/// The input as float32 rows: `(values, rows, features)`.
pub fn rows_f32(input: &Tensor) -> TractResult<(Vec<f32>, usize, usize)> {
    let (rows, features) = match input.shape() {
        [r, f] => (*r, *f),
        other => bail!("expected a [rows, features] input, got shape {other:?}"),
    };
    let cast = input.cast_to::<f32>()?;
    let values: Vec<f32> = cast.to_plain_array_view::<f32>()?.iter().copied().collect();
    Ok((values, rows, features))
}

/// The input as float64 rows (exact for float32, int32 and most int64 values).
pub fn rows_f64(input: &Tensor) -> TractResult<(Vec<f64>, usize, usize)> {
    let (rows, features) = match input.shape() {
        [r, f] => (*r, *f),
        other => bail!("expected a [rows, features] input, got shape {other:?}"),
    };
    let cast = input.cast_to::<f64>()?;
    let values: Vec<f64> = cast.to_plain_array_view::<f64>()?.iter().copied().collect();
    Ok((values, rows, features))
}

/// A classifier's two outputs: the label per row and `columns` scores per row.
pub fn classifier_outputs(columns: usize) -> Vec<Out> {
    vec![
        Out {
            dt: i64::datum_type(),
            shape: Shape::RowsOnly,
        },
        Out {
            dt: f32::datum_type(),
            shape: Shape::Rows(columns),
        },
    ]
}

/// Runs `row` over each of `rows` rows and assembles the label and score tensors; a row
/// with fewer scores than `columns` is padded with zeros.
pub fn classify_rows(
    rows: usize,
    columns: usize,
    mut row: impl FnMut(usize) -> TractResult<(i64, Vec<f32>)>,
) -> TractResult<TVec<Tensor>> {
    let mut labels = Vec::with_capacity(rows);
    let mut scores = Vec::with_capacity(rows * columns);
    for r in 0..rows {
        let (label, mut s) = row(r)?;
        s.resize(columns, 0.0);
        labels.push(label);
        scores.extend(s);
    }
    Ok(tvec![
        Tensor::from_shape(&[rows], &labels)?,
        Tensor::from_shape(&[rows, columns], &scores)?
    ])
}
