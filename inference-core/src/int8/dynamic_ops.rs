//! The operators of `quantize = "int8-dynamic"`: [`QuantizeRows`] turns f32 activations into
//! int8 with one scale per row at run time, [`Int8Product`] multiplies i8 by i8 into i32, and
//! [`DequantizeProduct`] turns the i32 product back into f32 with the row and column scales,
//! in one pass each. All three are written to and read from the compiled form.
//!
//! The loops work on fixed-width chunks so the compiler vectorises them (abs, max, multiply,
//! round, convert); tract's ONNX `DynamicQuantizeLinear` is a scalar loop over the tensor and
//! has one scale per tensor, which loses the small rows of a transformer's activations.

use tract_nnef::internal::*;
use tract_onnx::tract_core::ops::einsum::EinSum;

use crate::tensor_data::slice_of;

const QUANTIZE: &str = "inference_core_quantize_rows";
const DEQUANTIZE: &str = "inference_core_dequantize_product";
const PRODUCT: &str = "inference_core_int8_product";

/// Lanes the loops are written for: one AVX-512 register of f32, two of AVX2.
const LANES: usize = 16;

/// `x` (f32, `[..., k]`) to `(q, scale)`: `q` int8 of the same shape and `scale` f32
/// `[..., 1]`, with `x ≈ q · scale` row by row. Symmetric (no zero point), in [-127, 127].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct QuantizeRows;

/// The largest |value| of a row; NaN counts as 0.
#[inline(always)]
fn abs_max(row: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, v) in acc.iter_mut().zip(chunk) {
            *a = a.max(v.abs());
        }
    }
    tail.iter()
        .chain(acc.iter())
        .fold(0f32, |m, v| m.max(v.abs()))
}

/// The scale of a row whose largest |value| is `max`: a row of zeros (or one that is not
/// finite) gets 1, so its values quantize to 0 (or saturate) and nothing divides by 0.
#[inline(always)]
fn row_scale(max: f32) -> f32 {
    if max > 0.0 && max.is_finite() {
        max / 127.0
    } else {
        1.0
    }
}

/// Adding and subtracting 1.5 · 2²³ rounds an f32 below 2²² to the nearest integer, ties to
/// even, with plain vector adds (`round_ties_even` is a libm call below SSE4.1).
const ROUND: f32 = 12_582_912.0;

#[inline(always)]
fn quantize_row(row: &[f32], scale: f32, out: &mut [i8]) {
    let inverse = 1.0 / scale;
    // NaN clamps to NaN and converts to 0.
    let q = |v: f32| (((v * inverse).clamp(-127.0, 127.0) + ROUND) - ROUND) as i32 as i8;
    let mut chunks = row.chunks_exact(LANES);
    let mut outs = out.chunks_exact_mut(LANES);
    for (chunk, o) in (&mut chunks).zip(&mut outs) {
        for (o, v) in o.iter_mut().zip(chunk) {
            *o = q(*v);
        }
    }
    for (o, v) in outs.into_remainder().iter_mut().zip(chunks.remainder()) {
        *o = q(*v);
    }
}

/// Every row of `k` values of `values` into `q`, its scale into `scales`.
#[inline(always)]
fn quantize_rows_portable(values: &[f32], k: usize, q: &mut [i8], scales: &mut [f32]) {
    for ((row, out), scale) in values
        .chunks_exact(k)
        .zip(q.chunks_exact_mut(k))
        .zip(scales)
    {
        *scale = row_scale(abs_max(row));
        quantize_row(row, *scale, out);
    }
}

/// The same loops compiled for AVX2 (the binary's baseline is SSE2): 8 lanes instead of 4.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_rows_avx2(values: &[f32], k: usize, q: &mut [i8], scales: &mut [f32]) {
    quantize_rows_portable(values, k, q, scales)
}

fn quantize_rows(values: &[f32], k: usize, q: &mut [i8], scales: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { quantize_rows_avx2(values, k, q, scales) };
    }
    quantize_rows_portable(values, k, q, scales)
}

impl QuantizeRows {
    pub(crate) fn eval_tensor(x: &Tensor) -> TractResult<(Tensor, Tensor)> {
        let shape = x.shape();
        let k = *shape
            .last()
            .context("QuantizeRows needs a tensor of rank ≥ 1")?;
        let values = slice_of::<f32>(x)?;
        let rows = values.len().checked_div(k).unwrap_or(0);
        let mut q = vec![0i8; values.len()];
        let mut scales = vec![0f32; rows];
        if k > 0 {
            quantize_rows(values, k, &mut q, &mut scales);
        }
        let mut scale_shape: TVec<usize> = shape.into();
        *scale_shape.last_mut().unwrap() = 1;
        Ok((
            tract_ndarray::Array::from_shape_vec(shape, q)?.into_tensor(),
            tract_ndarray::Array::from_shape_vec(&*scale_shape, scales)?.into_tensor(),
        ))
    }
}

impl Op for QuantizeRows {
    fn name(&self) -> StaticName {
        "QuantizeRows".into()
    }
    op_as_typed_op!();
}

impl EvalOp for QuantizeRows {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        let (q, scales) = Self::eval_tensor(&x)?;
        Ok(tvec!(q.into_tvalue(), scales.into_tvalue()))
    }
}

impl TypedOp for QuantizeRows {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type() && inputs[0].rank() >= 1);
        let mut scale_shape = inputs[0].shape.to_tvec();
        *scale_shape.last_mut().unwrap() = 1.into();
        Ok(tvec!(
            i8::fact(inputs[0].shape.clone()),
            f32::fact(scale_shape)
        ))
    }
    as_op!();
}

/// `c` (i32, `[..., n]`) times its row's scale (f32, `[..., 1]`) and its column's (f32, `[n]`),
/// plus the column's bias (f32, `[n]`; zeros for a product without one): the f32 product of
/// two symmetric int8 operands, and the bias add the f32 plan fuses into its matmul.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DequantizeProduct;

/// A product's scales and bias, by column.
struct Columns<'a> {
    scales: &'a [f32],
    bias: &'a [f32],
}

#[inline(always)]
fn dequantize_row(row: &[i32], row_scale: f32, columns: &Columns, out: &mut [f32]) {
    let one = |o: &mut f32, r: i32, c: f32, b: f32| *o = r as f32 * (row_scale * c) + b;
    let mut rows = row.chunks_exact(LANES);
    let mut scales = columns.scales.chunks_exact(LANES);
    let mut bias = columns.bias.chunks_exact(LANES);
    let mut outs = out.chunks_exact_mut(LANES);
    for (((r, c), b), o) in (&mut rows).zip(&mut scales).zip(&mut bias).zip(&mut outs) {
        for (((o, r), c), b) in o.iter_mut().zip(r).zip(c).zip(b) {
            one(o, *r, *c, *b);
        }
    }
    for (((o, r), c), b) in outs
        .into_remainder()
        .iter_mut()
        .zip(rows.remainder())
        .zip(scales.remainder())
        .zip(bias.remainder())
    {
        one(o, *r, *c, *b);
    }
}

#[inline(always)]
fn dequantize_rows_portable(
    values: &[i32],
    row_scales: &[f32],
    columns: &Columns,
    out: &mut [f32],
) {
    let n = columns.scales.len();
    for ((row, o), s) in values
        .chunks_exact(n)
        .zip(out.chunks_exact_mut(n))
        .zip(row_scales)
    {
        dequantize_row(row, *s, columns, o);
    }
}

/// The same loops compiled for AVX2, as [`quantize_rows_avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dequantize_rows_avx2(
    values: &[i32],
    row_scales: &[f32],
    columns: &Columns,
    out: &mut [f32],
) {
    dequantize_rows_portable(values, row_scales, columns, out)
}

fn dequantize_rows(values: &[i32], row_scales: &[f32], columns: &Columns, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { dequantize_rows_avx2(values, row_scales, columns, out) };
    }
    dequantize_rows_portable(values, row_scales, columns, out)
}

impl DequantizeProduct {
    pub(crate) fn eval_tensor(
        c: &Tensor,
        rows: &Tensor,
        scales: &Tensor,
        bias: &Tensor,
    ) -> TractResult<Tensor> {
        let values = slice_of::<i32>(c)?;
        let row_scales = slice_of::<f32>(rows)?;
        let columns = Columns {
            scales: slice_of::<f32>(scales)?,
            bias: slice_of::<f32>(bias)?,
        };
        let n = columns.scales.len();
        ensure!(
            c.shape().last() == Some(&n)
                && values.len() == row_scales.len() * n
                && columns.bias.len() == n,
            "DequantizeProduct: a product of shape {:?} with {} row scales, {n} column scales and {} biases",
            c.shape(),
            row_scales.len(),
            columns.bias.len()
        );
        let mut out = vec![0f32; values.len()];
        if n > 0 {
            dequantize_rows(values, row_scales, &columns, &mut out);
        }
        Ok(tract_ndarray::Array::from_shape_vec(c.shape(), out)?.into_tensor())
    }
}

impl Op for DequantizeProduct {
    fn name(&self) -> StaticName {
        "DequantizeProduct".into()
    }
    op_as_typed_op!();
}

impl EvalOp for DequantizeProduct {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (c, rows, scales, bias) = args_4!(inputs);
        Ok(tvec!(
            Self::eval_tensor(&c, &rows, &scales, &bias)?.into_tvalue()
        ))
    }
}

impl TypedOp for DequantizeProduct {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == i32::datum_type());
        ensure!(inputs[1].datum_type == f32::datum_type());
        for column in &inputs[2..] {
            ensure!(column.datum_type == f32::datum_type() && column.rank() == 1);
        }
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }
    as_op!();
}

/// i8 × i8 → i32 over `axes`: tract's `EinSum` with `operating_dt = i32`, which codegen
/// lowers to its integer kernels. Only a carrier for the compiled form: tract's NNEF writer
/// turns every `EinSum` into a matmul whose result has its operands' type (i8 here), so
/// the product is written as ours and read back as the `EinSum` ([`Int8Product::einsum`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Int8Product {
    pub axes: AxesMapping,
}

impl Int8Product {
    fn einsum(&self) -> EinSum {
        EinSum::new(self.axes.clone(), i32::datum_type())
    }
}

impl Op for Int8Product {
    fn name(&self) -> StaticName {
        "Int8Product".into()
    }
    op_as_typed_op!();
}

impl EvalOp for Int8Product {
    op_out_of_plan!();

    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        self.einsum().eval(ctx, inputs)
    }
}

impl TypedOp for Int8Product {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.iter().all(|f| f.datum_type == i8::datum_type()));
        self.einsum().output_facts(inputs)
    }
    as_op!();
}

pub(crate) fn register_nnef(registry: &mut Registry) {
    registry.register_dumper(dump_quantize);
    registry.register_primitive(
        QUANTIZE,
        &[TypeName::Scalar.tensor().named("input")],
        &[
            ("output", TypeName::Integer.tensor()),
            ("scales", TypeName::Scalar.tensor()),
        ],
        |builder, invocation| {
            let input: OutletId = invocation.named_arg_as(builder, "input")?;
            builder.wire(QuantizeRows, &[input])
        },
    );
    registry.register_dumper(dump_product);
    registry.register_primitive(
        PRODUCT,
        &[
            TypeName::Integer.tensor().named("a"),
            TypeName::Integer.tensor().named("b"),
            TypeName::String.named("expr"),
        ],
        &[("output", TypeName::Integer.tensor())],
        |builder, invocation| {
            let a: OutletId = invocation.named_arg_as(builder, "a")?;
            let b: OutletId = invocation.named_arg_as(builder, "b")?;
            let expr: String = invocation.named_arg_as(builder, "expr")?;
            let product = Int8Product {
                axes: expr.parse()?,
            };
            builder.wire(product.einsum(), &[a, b])
        },
    );
    registry.register_dumper(dump_dequantize);
    registry.register_primitive(
        DEQUANTIZE,
        &[
            TypeName::Integer.tensor().named("product"),
            TypeName::Scalar.tensor().named("rows"),
            TypeName::Scalar.tensor().named("columns"),
            TypeName::Scalar.tensor().named("bias"),
        ],
        &[("output", TypeName::Scalar.tensor())],
        |builder, invocation| {
            let inputs = ["product", "rows", "columns", "bias"]
                .iter()
                .map(|name| invocation.named_arg_as(builder, name))
                .collect::<TractResult<TVec<OutletId>>>()?;
            builder.wire(DequantizeProduct, &inputs)
        },
    );
}

fn dump_quantize(
    ast: &mut IntoAst,
    node: &TypedNode,
    _op: &QuantizeRows,
) -> TractResult<Option<Arc<RValue>>> {
    let input = ast.mapping[&node.inputs[0]].clone();
    Ok(Some(invocation(QUANTIZE, &[input], &[])))
}

fn dump_product(
    ast: &mut IntoAst,
    node: &TypedNode,
    op: &Int8Product,
) -> TractResult<Option<Arc<RValue>>> {
    let a = ast.mapping[&node.inputs[0]].clone();
    let b = ast.mapping[&node.inputs[1]].clone();
    Ok(Some(invocation(
        PRODUCT,
        &[a, b],
        &[("expr", string(op.axes.to_string()))],
    )))
}

fn dump_dequantize(
    ast: &mut IntoAst,
    node: &TypedNode,
    _op: &DequantizeProduct,
) -> TractResult<Option<Arc<RValue>>> {
    let inputs: TVec<Arc<RValue>> = node.inputs.iter().map(|i| ast.mapping[i].clone()).collect();
    Ok(Some(invocation(DEQUANTIZE, &inputs, &[])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_quantize_with_their_own_scale() {
        // Two rows of 20 (a full chunk and a tail), one of them tiny: a per-tensor scale
        // would round it to zeros.
        let mut x: Vec<f32> = (0..20).map(|i| (i as f32 - 10.0) * 3.0).collect();
        x.extend((0..20).map(|i| (i as f32 - 10.0) * 1e-3));
        let x = tract_ndarray::Array::from_shape_vec((2, 20), x.clone())
            .unwrap()
            .into_tensor();
        let (q, s) = QuantizeRows::eval_tensor(&x).unwrap();
        assert_eq!(q.shape(), &[2, 20]);
        assert_eq!(s.shape(), &[2, 1]);
        let q = slice_of::<i8>(&q).unwrap();
        let s = slice_of::<f32>(&s).unwrap();
        assert_eq!(s[0], 30.0 / 127.0);
        assert!((s[1] - 0.01 / 127.0).abs() < 1e-10, "{}", s[1]);
        // The largest magnitude maps to ±127, the rest round to nearest.
        assert_eq!(q[0], -127);
        assert_eq!(q[20], -127);
        let x = slice_of::<f32>(&x).unwrap();
        for (i, (v, q)) in x.iter().zip(q).enumerate() {
            let err = (v - *q as f32 * s[i / 20]).abs();
            assert!(err <= s[i / 20] / 2.0 + 1e-6, "{i}: {v} vs {q}");
        }
    }

    #[test]
    fn zero_and_non_finite_rows_do_not_divide_by_zero() {
        let x = tract_ndarray::arr2(&[[0f32, 0.0, 0.0], [f32::NAN, 1.0, -2.0]]).into_tensor();
        let (q, s) = QuantizeRows::eval_tensor(&x).unwrap();
        assert_eq!(slice_of::<f32>(&s).unwrap(), &[1.0, 2.0 / 127.0]);
        assert_eq!(slice_of::<i8>(&q).unwrap(), &[0, 0, 0, 0, 64, -127]);
    }

    #[test]
    fn products_dequantize_with_row_and_column_scales() {
        let c = tract_ndarray::Array::from_shape_vec((2, 17), (0..34).collect::<Vec<i32>>())
            .unwrap()
            .into_tensor();
        let rows = tract_ndarray::arr2(&[[2f32], [0.5]]).into_tensor();
        let columns: Vec<f32> = (0..17).map(|j| j as f32 + 1.0).collect();
        let bias: Vec<f32> = (0..17).map(|j| j as f32 * -0.25).collect();
        let tensor = |v: &[f32]| tract_ndarray::arr1(v).into_tensor();
        let out =
            DequantizeProduct::eval_tensor(&c, &rows, &tensor(&columns), &tensor(&bias)).unwrap();
        let out = slice_of::<f32>(&out).unwrap();
        for (i, v) in out.iter().enumerate() {
            let (r, j) = (i / 17, i % 17);
            let want = i as f32 * ([2.0, 0.5][r] * columns[j]) + bias[j];
            assert_eq!(*v, want, "{i}");
        }
        // A product and scales that do not fit are an error, not a panic.
        let wrong = tensor(&[1.0, 2.0]);
        assert!(DequantizeProduct::eval_tensor(&c, &rows, &wrong, &tensor(&bias)).is_err());
        assert!(DequantizeProduct::eval_tensor(&c, &rows, &tensor(&columns), &wrong).is_err());
    }
}
