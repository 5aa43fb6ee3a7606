//! `quantize = "int8-dynamic"`: matrix products on tract's integer kernels. Applied at pack
//! time to the decluttered graph, before it is written in the compiled form, so the function
//! only runs codegen on it.
//!
//! A product of an activation and a constant f32 weight (`...k,kn->...n`, or the weight as
//! `nk`; several summed axes, as tract folds attention heads `[.., h, d] · [h, d, n]`, are
//! flattened to one) becomes:
//! - the weight as symmetric int8, one scale per output column (an i8 constant: the file
//!   keeps the int8 size);
//! - the activation quantized per row at run time ([`QuantizeRows`]);
//! - `EinSum` i8 × i8 → i32 ([`Int8Product`] in the compiled form), which tract's codegen
//!   lowers to its integer kernels (AVX-512 VNNI, AVX-VNNI or AVX2, whichever the CPU has);
//! - the i32 product back to f32 with both scales and the layer's bias, when it has one
//!   ([`DequantizeProduct`]; the f32 plan fuses that add into its matmul).
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
    /// How many trailing axes of the activation the product sums over (tract folds a
    /// reshape into the product, e.g. attention heads `[.., h, d] · [h, d, n]`).
    k_axes: usize,
    /// Whether the weight's output-column axis comes first (`[n, k..]`) or last (`[k.., n]`).
    column_first: bool,
}

/// The product at `node`, if it fits: an f32 `EinSum` of one activation and one constant
/// weight of at least `super::DEFAULT_MIN_ELEMENTS` values, summing over the activation's
/// trailing axes (the weight's other axes, in the same order), the weight's one remaining
/// axis last in the output and the activation's other axes in the output in place (so a
/// row's scale broadcasts over the output).
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
    if weight.rank() < 2 || weight.len() < super::DEFAULT_MIN_ELEMENTS {
        return Ok(None);
    }
    let k_axes = weight.rank() - 1;
    let act_rank = facts[act].rank();
    let out_rank = op.axes.rank(InOut::Out(0));
    if act_rank < k_axes || out_rank != act_rank - k_axes + 1 {
        return Ok(None);
    }
    let rows = act_rank - k_axes;
    // The weight positions of the summed axes, by activation position.
    let mut k_in_weight = vec![None; k_axes];
    let mut column = None;
    for axis in op.axes.iter_all_axes() {
        let (a, w, o) = (
            &axis.inputs[act][..],
            &axis.inputs[weight_slot][..],
            &axis.outputs[0][..],
        );
        match (a, w, o) {
            (&[a], &[w], &[]) if a >= rows => k_in_weight[a - rows] = Some(w),
            (&[], &[w], &[o]) if o == out_rank - 1 => column = Some(w),
            (&[a], &[], &[o]) if a == o && a < rows => {}
            _ => return Ok(None),
        }
    }
    let Some(column) = column else {
        return Ok(None);
    };
    let column_first = column == 0;
    let first_k = if column_first { 1 } else { 0 };
    // In the weight, the summed axes in the activation's order, the column before or after:
    // then both flatten to one k axis alike.
    let in_order = k_in_weight
        .iter()
        .enumerate()
        .all(|(i, w)| *w == Some(first_k + i));
    Ok(in_order.then(|| Candidate {
        node: node.id,
        name: node.name.clone(),
        weight_slot,
        k_axes,
        column_first,
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

fn quantize_columns(weight: &Tensor, column_first: bool) -> TractResult<Int8Columns> {
    let w = weight
        .to_plain_array_view::<f32>()?
        .into_dimensionality::<tract_ndarray::Ix2>()?;
    let w = if column_first { w.reversed_axes() } else { w };
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
    let q = if column_first { q.reversed_axes() } else { q };
    Ok(Int8Columns {
        q: q.as_standard_layout().into_owned().into_tensor(),
        scales: tract_ndarray::Array1::from(scales).into_tensor(),
    })
}

/// The product over one k axis: the activation's rows and `k`, the weight `kn` or `nk`.
fn flat_axes(rows: usize, weight_slot: usize, column_first: bool) -> TractResult<AxesMapping> {
    // Row labels: never 'k' or 'n'.
    ensure!(rows <= 10, "a product with {rows} row axes");
    let rows: String = ('a'..='j').take(rows).collect();
    let act = format!("{rows}k");
    let weight = if column_first { "nk" } else { "kn" };
    let inputs = if weight_slot == 1 {
        [act.as_str(), weight]
    } else {
        [weight, act.as_str()]
    };
    format!("{},{}->{rows}n", inputs[0], inputs[1]).parse()
}

/// The `QuantizeRows` node already reading `activation`, if any.
fn quantized(model: &TypedModel, activation: OutletId) -> Option<usize> {
    model
        .outlet_successors(activation)
        .iter()
        .map(|inlet| inlet.node)
        .find(|n| model.node(*n).op_is::<QuantizeRows>())
}

/// A constant bias added to a product's output, which the f32 plan fuses into its matmul:
/// the `Add` node and the bias as `[columns]`.
struct BiasAdd {
    node: usize,
    values: Tensor,
}

fn bias_add(
    model: &TypedModel,
    product: &TypedNode,
    columns: usize,
) -> TractResult<Option<BiasAdd>> {
    let &[inlet] = &*product.outputs[0].successors else {
        return Ok(None);
    };
    if model
        .output_outlets()?
        .contains(&OutletId::new(product.id, 0))
    {
        return Ok(None);
    }
    let add = model.node(inlet.node);
    let is_add = add
        .op_as::<tract_onnx::tract_core::ops::binary::TypedBinOp>()
        .is_some_and(|op| op.0.is::<tract_onnx::tract_core::ops::math::Add>());
    if !is_add {
        return Ok(None);
    }
    let other = add.inputs[1 - inlet.slot];
    let fact = model.outlet_fact(other)?;
    let out_rank = model.outlet_fact(OutletId::new(product.id, 0))?.rank();
    let Some(bias) = &fact.konst else {
        return Ok(None);
    };
    // One value per column, broadcast over the rows.
    let per_column = bias.datum_type() == f32::datum_type()
        && bias.rank() <= out_rank
        && bias.shape().last() == Some(&columns)
        && bias.len() == columns;
    if !per_column {
        return Ok(None);
    }
    Ok(Some(BiasAdd {
        node: add.id,
        values: (**bias).clone().into_shape(&[columns])?,
    }))
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
        let act = 1 - c.weight_slot;
        let weight = model
            .outlet_fact(node.inputs[c.weight_slot])?
            .konst
            .clone()
            .unwrap();
        let act_shape = model.outlet_fact(node.inputs[act])?.shape.to_tvec();
        let rows = act_shape.len() - c.k_axes;
        // Several summed axes flatten to one: k = their product, on both sides.
        let columns = weight.shape()[if c.column_first { 0 } else { weight.rank() - 1 }];
        let k = weight.len() / columns;
        let flat = if c.column_first {
            [columns, k]
        } else {
            [k, columns]
        };
        let weight = (*weight).clone().into_shape(&flat)?;
        let Int8Columns { q, scales } = quantize_columns(&weight, c.column_first)?;
        let name = &c.name;
        let mut patch = TypedModelPatch::new(format!("int8-dynamic {name}"));
        let xq = match quantized(model, node.inputs[act]).filter(|_| c.k_axes == 1) {
            // Query, key and value read the same activations: quantized once.
            Some(existing) => [
                patch.tap_model(model, OutletId::new(existing, 0))?,
                patch.tap_model(model, OutletId::new(existing, 1))?,
            ],
            None => {
                let mut x = patch.tap_model(model, node.inputs[act])?;
                if c.k_axes > 1 {
                    let reshape =
                        AxisOp::Reshape(rows, act_shape[rows..].into(), tvec![k.to_dim()]);
                    x = patch.wire_node(format!("{name}.flatten_k"), reshape, &[x])?[0];
                }
                let xq = patch.wire_node(format!("{name}.quantize_rows"), QuantizeRows, &[x])?;
                [xq[0], xq[1]]
            }
        };
        let wq = patch.add_const(format!("{name}.weight_int8"), q)?;
        let ws = patch.add_const(format!("{name}.weight_scales"), scales)?;
        let mut inputs = [xq[0], xq[0]];
        inputs[c.weight_slot] = wq;
        let product = patch.wire_node(
            format!("{name}.int8"),
            Int8Product {
                axes: flat_axes(rows, c.weight_slot, c.column_first)?,
            },
            &inputs,
        )?;
        let bias = bias_add(model, node, columns)?;
        let bias_values = match &bias {
            Some(b) => b.values.clone(),
            None => tract_ndarray::Array1::<f32>::zeros(columns).into_tensor(),
        };
        let bias_values = patch.add_const(format!("{name}.bias"), bias_values)?;
        let out = patch.wire_node(
            format!("{name}.dequantize"),
            DequantizeProduct,
            &[product[0], xq[1], ws, bias_values],
        )?;
        let replaced = bias.map(|b| b.node).unwrap_or(c.node);
        patch.shunt_outside(model, replaced.into(), out[0])?;
        patch.apply(model)?;
        done.push(c.name);
    }
    // Drops the replaced f32 products, bias adds and weights.
    model.compact()?;
    Ok(done)
}
