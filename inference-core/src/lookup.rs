//! Integer inputs that index a table in the model (token ids into an embedding matrix, token
//! types, positions). tract's `Gather` trusts its indices, so an id past the table would
//! panic or read out of bounds: the range is found in the graph at load time and every
//! request is checked against it before the plan runs.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::Gather;
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::change_axes::AxisOp;

use crate::error::RequestError;
use crate::tensor_data::slice_of;

/// Model input `input` indexes a table of `len` rows: valid values are `-len..len`
/// (negative counts from the end, as ONNX `Gather` allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexLimit {
    pub input: usize,
    pub len: usize,
}

/// Every model input that reaches a `Gather` on a constant table as its indices, through
/// casts and reshapes only; one limit per input (the smallest table).
pub fn index_limits(model: &TypedModel) -> Vec<IndexLimit> {
    let mut limits: Vec<IndexLimit> = Vec::new();
    for node in model.nodes() {
        let Some(gather) = node.op_as::<Gather>() else {
            continue;
        };
        let Ok(data) = model.outlet_fact(node.inputs[0]) else {
            continue;
        };
        if data.konst.is_none() {
            continue;
        }
        let Some(len) = data
            .shape
            .as_concrete()
            .and_then(|s| s.get(gather.axis).copied())
        else {
            continue;
        };
        let Some(input) = source_input(model, node.inputs[1]) else {
            continue;
        };
        match limits.iter_mut().find(|l| l.input == input) {
            Some(l) => l.len = l.len.min(len),
            None => limits.push(IndexLimit { input, len }),
        }
    }
    limits.sort_by_key(|l| l.input);
    limits
}

/// The model input `outlet` is, following casts and axis changes back.
fn source_input(model: &TypedModel, mut outlet: OutletId) -> Option<usize> {
    // A bound on the walk: real graphs have a handful of casts and reshapes here.
    for _ in 0..16 {
        if let Some(ix) = model.inputs.iter().position(|i| *i == outlet) {
            return Some(ix);
        }
        let node = model.node(outlet.node);
        if (node.op_is::<Cast>() || node.op_is::<AxisOp>()) && node.inputs.len() == 1 {
            outlet = node.inputs[0];
        } else {
            return None;
        }
    }
    None
}

/// `Ok` when every value of each limited input is a valid row; otherwise a 400 naming the
/// input, the first bad value and where it is, and the valid range.
pub fn check_indices(
    inputs: &[TValue],
    limits: &[IndexLimit],
    name_of: impl Fn(usize) -> String,
) -> Result<(), RequestError> {
    for limit in limits {
        let Some(tensor) = inputs.get(limit.input) else {
            continue;
        };
        if !tensor.datum_type().is_integer() {
            continue;
        }
        let Ok(values) = tensor.cast_to::<i64>() else {
            continue;
        };
        let Ok(values) = slice_of::<i64>(&values) else {
            continue;
        };
        let len = limit.len as i64;
        if let Some((at, bad)) = values
            .iter()
            .enumerate()
            .find(|(_, v)| !(-len..len).contains(*v))
        {
            return Err(RequestError::bad(format!(
                "field \"{}\": value {bad} at {} is out of range: the model looks it up in a table of {len} rows, so values must be within 0..={} (or -{len}..=-1, counted from the end)",
                name_of(limit.input),
                coordinates(at, tensor.shape()),
                len - 1
            )));
        }
    }
    Ok(())
}

/// `[i, j, …]` of flat index `at` in `shape`.
fn coordinates(mut at: usize, shape: &[usize]) -> String {
    let mut coords = vec![0; shape.len()];
    for (c, dim) in coords.iter_mut().zip(shape).rev() {
        if *dim > 0 {
            *c = at % dim;
            at /= dim;
        }
    }
    format!(
        "[{}]",
        coords
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_ids_name_the_value_its_place_and_the_range() {
        let ids: TValue = tensor2(&[[1i64, 2, 3], [4, 99, -100]]).into();
        let limits = [IndexLimit { input: 0, len: 99 }];
        let name = |_| "inputs.input_ids".to_string();
        let e = check_indices(&[ids], &limits, name)
            .unwrap_err()
            .to_string();
        assert!(e.contains("value 99 at [1, 1]"), "{e}");
        assert!(
            e.contains("0..=98") && e.contains("inputs.input_ids"),
            "{e}"
        );

        let ok: TValue = tensor2(&[[0i64, 98, -99]]).into();
        check_indices(&[ok], &limits, name).unwrap();
        // A float input or one with no limit is not checked here.
        let floats: TValue = tensor1(&[1e9f32]).into();
        check_indices(&[floats], &limits, name).unwrap();
    }
}
