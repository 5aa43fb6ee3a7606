//! `quantize = "int8-dynamic"`: matrix products on tract's integer kernels. Applied at pack
//! time to the decluttered graph, before it is written in the compiled form, so the function
//! only runs codegen on it.
//!
//! A product of an activation and a constant f32 weight (`...k,kn->...n`, or the weight as
//! `nk`) becomes:
//! - the weight as symmetric int8, one scale per output column (an i8 constant: the file
//!   keeps the int8 size);
//! - the activation quantized per row at run time ([`QuantizeRows`]);
//! - `EinSum` i8 × i8 → i32 ([`Int8Product`] in the compiled form), which tract's codegen
//!   lowers to its integer kernels (AVX-512 VNNI, AVX-VNNI or AVX2, whichever the CPU has);
//! - the i32 product back to f32 with both scales ([`DequantizeProduct`]).
//!
//! Products of two activations (attention's `QKᵀ`, `PV`), convolutions and small weights
//! stay f32.

use tract_nnef::internal::*;
use tract_onnx::tract_core::ops::einsum::EinSum;

use super::dynamic_ops::{DequantizeProduct, Int8Product, QuantizeRows};

/// A product this rewrite can take: its node name and where its operands are.
struct Candidate {
    node: usize,
    name: String,
    /// The input slot of the constant weight (the activation is the other one).
    weight_slot: usize,
    /// The weight's output-column axis (0 or 1).
    weight_column_axis: usize,
}

/// The product at `node`, if it fits: an f32 `EinSum` of one activation and one constant
/// rank-2 weight of at least `super::DEFAULT_MIN_ELEMENTS`, contracting the activation's
/// last axis, with the weight's other axis last in the output and the activation's other
/// axes in the output in the same order (so a row's scale broadcasts over the output).
fn candidate(model: &TypedModel, node: &TypedNode) -> TractResult<Option<Candidate>> {
    let Some(op) = node.op_as::<EinSum>() else {
        return Ok(None);
    };
    if op.q_params.is_some() || op.operating_dt != f32::datum_type() || node.inputs.len() != 2 {
        return Ok(None);
    }
    let facts = model.node_input_facts(node.id)?;
    if facts.iter().any(|f| f.datum_type != f32::datum_type()) {
        return Ok(None);
    }
    let weight_slot = match (facts[0].konst.is_some(), facts[1].konst.is_some()) {
        (false, true) => 1,
        (true, false) => 0,
        _ => return Ok(None),
    };
    let act = 1 - weight_slot;
    let weight = facts[weight_slot].konst.as_ref().unwrap();
    if weight.rank() != 2 || weight.len() < super::DEFAULT_MIN_ELEMENTS {
        return Ok(None);
    }
    let act_rank = facts[act].rank();
    let out_rank = op.axes.rank(InOut::Out(0));
    if act_rank == 0 || out_rank != act_rank {
        return Ok(None);
    }
    let mut weight_column_axis = None;
    for axis in op.axes.iter_all_axes() {
        let (a, w, o) = (
            &axis.inputs[act][..],
            &axis.inputs[weight_slot][..],
            &axis.outputs[0][..],
        );
        match (a, w, o) {
            // k: the activation's last axis, the weight's other one.
            (&[a], &[_], &[]) if a == act_rank - 1 => {}
            // n: the weight's column, last in the output.
            (&[], &[w], &[o]) if o == out_rank - 1 => weight_column_axis = Some(w),
            // The activation's rows, in place.
            (&[a], &[], &[o]) if a == o && a < act_rank - 1 => {}
            _ => return Ok(None),
        }
    }
    Ok(weight_column_axis.map(|weight_column_axis| Candidate {
        node: node.id,
        name: node.name.clone(),
        weight_slot,
        weight_column_axis,
    }))
}

fn candidates(model: &TypedModel) -> TractResult<Vec<Candidate>> {
    let mut found = Vec::new();
    for id in model.eval_order()? {
        if let Some(c) = candidate(model, model.node(id))? {
            found.push(c);
        }
    }
    Ok(found)
}

/// The names of the products `quantize = "int8-dynamic"` can run on int8, in graph order.
pub(crate) fn products(model: &TypedModel) -> TractResult<Vec<String>> {
    Ok(candidates(model)?.into_iter().map(|c| c.name).collect())
}

/// A weight `[k, n]` (or `[n, k]`) as symmetric int8 with one scale per column `n`.
struct Int8Columns {
    q: Tensor,
    scales: Tensor,
}

fn quantize_columns(weight: &Tensor, column_axis: usize) -> TractResult<Int8Columns> {
    let w = weight
        .to_plain_array_view::<f32>()?
        .into_dimensionality::<tract_ndarray::Ix2>()?;
    let w = if column_axis == 1 {
        w
    } else {
        w.reversed_axes()
    };
    let scales: Vec<f32> = w
        .columns()
        .into_iter()
        .map(|c| {
            let max = c.iter().fold(0f32, |m, v| m.max(v.abs()));
            if max > 0.0 && max.is_finite() {
                max / 127.0
            } else {
                1.0
            }
        })
        .collect();
    let q = tract_ndarray::Array2::from_shape_fn(w.raw_dim(), |(k, n)| {
        (w[(k, n)] / scales[n])
            .round_ties_even()
            .clamp(-127.0, 127.0) as i8
    });
    // Back in the weight's own layout.
    let q = if column_axis == 1 {
        q
    } else {
        q.reversed_axes()
    };
    Ok(Int8Columns {
        q: q.as_standard_layout().into_owned().into_tensor(),
        scales: tract_ndarray::Array1::from(scales).into_tensor(),
    })
}

/// Rewrites every product of [`products`] but those named in `keep_f32` to run on int8;
/// returns the names rewritten.
pub(crate) fn rewrite(model: &mut TypedModel, keep_f32: &[String]) -> TractResult<Vec<String>> {
    let mut done = Vec::new();
    for c in candidates(model)? {
        if keep_f32.contains(&c.name) {
            continue;
        }
        let node = model.node(c.node);
        let op = node.op_as::<EinSum>().unwrap().clone();
        let act = 1 - c.weight_slot;
        let weight = model
            .outlet_fact(node.inputs[c.weight_slot])?
            .konst
            .clone()
            .unwrap();
        let Int8Columns { q, scales } = quantize_columns(&weight, c.weight_column_axis)?;
        let name = &c.name;
        let mut patch = TypedModelPatch::new(format!("int8-dynamic {name}"));
        let x = patch.tap_model(model, node.inputs[act])?;
        let xq = patch.wire_node(format!("{name}.quantize_rows"), QuantizeRows, &[x])?;
        let wq = patch.add_const(format!("{name}.weight_int8"), q)?;
        let ws = patch.add_const(format!("{name}.weight_scales"), scales)?;
        let mut inputs = [xq[0], xq[0]];
        inputs[c.weight_slot] = wq;
        let product = patch.wire_node(
            format!("{name}.int8"),
            Int8Product {
                axes: op.axes.clone(),
            },
            &inputs,
        )?;
        let out = patch.wire_node(
            format!("{name}.dequantize"),
            DequantizeProduct,
            &[product[0], xq[1], ws],
        )?;
        patch.shunt_outside(model, c.node.into(), out[0])?;
        patch.apply(model)?;
        done.push(c.name);
    }
    // Node ids changed as patches applied; the f32 weights are dropped here.
    model.compact()?;
    Ok(done)
}
