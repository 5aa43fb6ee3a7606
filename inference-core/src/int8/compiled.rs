//! int8 weights in the compiled form. Declutter works on f32 weights (the ONNX path folds
//! each constant `DequantizeLinear` first), so the decluttered graph holds f32 constants; a
//! constant whose bytes are exactly a folded weight's is put back as its int8 values and
//! scales behind an [`Int8Weight`] node, written so, and restored to the same f32 bytes by
//! the same routine when the compiled form is read. The loaded graph is the f32 one; the
//! file (and the binary) keeps the int8 size.

use tract_nnef::internal::*;

use super::dequantize_f32;

const PRIMITIVE: &str = "inference_core_int8_weight";

/// A weight the ONNX path restores to f32: its int8 values, per-channel scales and layout
/// (`len` channels, `inner` values per channel step), and the f32 bytes it becomes. Only
/// pack time asks for them (the compiled writer keeps those weights int8).
#[cfg_attr(not(feature = "pack"), allow(dead_code))]
pub(crate) struct Folded {
    pub q: Vec<i8>,
    pub scales: Vec<f32>,
    pub inner: usize,
    pub len: usize,
    pub f32_bytes: Vec<u8>,
}

/// An f32 constant kept as int8 values and scales: `(q · scale)` per channel, shaped `shape`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Int8Weight {
    shape: TVec<usize>,
    inner: usize,
    len: usize,
}

impl Int8Weight {
    /// The same f32 values the ONNX path folds, written straight into the tensor.
    fn restore(&self, q: &Tensor, scales: &Tensor) -> TractResult<Tensor> {
        let q = crate::tensor_data::slice_of::<i8>(q)?;
        let scales = crate::tensor_data::slice_of::<f32>(scales)?;
        ensure!(
            q.len() == self.shape.iter().product::<usize>(),
            "int8 weight of the wrong size"
        );
        ensure!(
            scales.len() == 1 || scales.len() == self.len,
            "int8 weight with the wrong scales"
        );
        let mut values = vec![0f32; q.len()];
        dequantize_f32(q, scales, &[0], self.inner, self.len, &mut values);
        // Moved into the tensor, not copied.
        Ok(tract_ndarray::Array::from_shape_vec(&*self.shape, values)?.into_tensor())
    }
}

impl Op for Int8Weight {
    fn name(&self) -> StaticName {
        "Int8Weight".into()
    }
    op_as_typed_op!();
}

impl EvalOp for Int8Weight {
    // Never folded back into an f32 constant before it is written.
    not_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (q, scales) = args_2!(inputs);
        Ok(tvec!(self.restore(&q, &scales)?.into_tvalue()))
    }
}

impl TypedOp for Int8Weight {
    fn output_facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(&*self.shape)))
    }
    as_op!();
}

/// Puts the f32 constants of `model` that are exactly a weight of `folded` back as int8
/// (pack time, writing the compiled form).
#[cfg(feature = "pack")]
pub(crate) fn keep_int8(model: &mut TypedModel, folded: &[Folded]) -> TractResult<()> {
    let by_hash: std::collections::HashMap<String, &Folded> = folded
        .iter()
        .map(|f| (crate::sha256_hex(&f.f32_bytes), f))
        .collect();
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(konst) = node.op_as::<tract_core::ops::konst::Const>() else {
            continue;
        };
        let value = konst.val().clone();
        if value.datum_type() != f32::datum_type() || value.len() < super::DEFAULT_MIN_ELEMENTS {
            continue;
        }
        let bytes = value.try_as_plain_ram()?.as_bytes();
        let Some(f) = by_hash.get(&crate::sha256_hex(bytes)) else {
            continue;
        };
        if f.f32_bytes != bytes {
            continue;
        }
        let name = node.name.clone();
        let mut patch = TypedModelPatch::default();
        let q = patch.add_const(format!("{name}.int8"), tensor1(&f.q))?;
        let scales = patch.add_const(format!("{name}.scales"), tensor1(&f.scales))?;
        let op = Int8Weight {
            shape: value.shape().into(),
            inner: f.inner,
            len: f.len,
        };
        let restored = patch.wire_node(format!("{name}.restore"), op, &[q, scales])?;
        patch.shunt_outside(model, OutletId::new(id, 0), restored[0])?;
        patch.apply(model)?;
    }
    Ok(())
}

pub(crate) fn register_nnef(registry: &mut Registry) {
    registry.register_dumper(dump);
    registry.register_primitive(
        PRIMITIVE,
        &[
            TypeName::Integer.tensor().named("q"),
            TypeName::Scalar.tensor().named("scales"),
            TypeName::Integer.array().named("shape"),
            TypeName::Integer.named("inner"),
            TypeName::Integer.named("len"),
        ],
        &[("output", TypeName::Scalar.tensor())],
        load,
    );
}

fn dump(ast: &mut IntoAst, node: &TypedNode, op: &Int8Weight) -> TractResult<Option<Arc<RValue>>> {
    let q = ast.mapping[&node.inputs[0]].clone();
    let scales = ast.mapping[&node.inputs[1]].clone();
    Ok(Some(invocation(
        PRIMITIVE,
        &[q, scales],
        &[
            ("shape", tract_nnef::ser::ints(&op.shape)),
            ("inner", numeric(op.inner)),
            ("len", numeric(op.len)),
        ],
    )))
}

/// Restored to the f32 constant at read: the loaded graph is the one the ONNX path plans.
fn load(builder: &mut ModelBuilder, invocation: &ResolvedInvocation) -> TractResult<Value> {
    let q: Arc<Tensor> = invocation.named_arg_as(builder, "q")?;
    let scales: Arc<Tensor> = invocation.named_arg_as(builder, "scales")?;
    let op = Int8Weight {
        shape: invocation.named_arg_as(builder, "shape")?,
        inner: invocation.named_arg_as(builder, "inner")?,
        len: invocation.named_arg_as(builder, "len")?,
    };
    let restored = op.restore(&q, &scales)?;
    Ok(Value::Wire(builder.add_const(restored)?))
}
