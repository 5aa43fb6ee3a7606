//! ONNX `If` as tract parses it, except where the condition is known while the graph is
//! typed (an input fixed to a value at pack time, a shape made concrete): then only the
//! branch taken is analysed and typed. tract's own `If` analyses both branches with the
//! node's facts, and the branch not taken (silero VAD's 8 kHz model, given 16 kHz frames)
//! fails to type, so the graph would not load although it never runs that branch.

use tract_onnx::model::{ParseResult, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_core::ops::logic::IfThenElse;
use tract_onnx::tract_hir::internal::*;

/// Replaces tract's `If` parser with [`ConstantIf`]'s.
pub(crate) fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register.insert("If", parse);
}

/// As tract-onnx parses `If`: each branch a sub-model, the outer values either reads as
/// the node's extra inputs (after the condition).
fn parse(
    ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let ParseResult {
        model: then_body,
        unresolved_inputs: then_reads,
        ..
    } = ctx.parse_graph(node.get_attr("then_branch")?)?;
    let ParseResult {
        model: else_body,
        unresolved_inputs: else_reads,
        ..
    } = ctx.parse_graph(node.get_attr("else_branch")?)?;
    let mut reads: Vec<String> = then_reads.iter().chain(&else_reads).cloned().collect();
    reads.sort();
    reads.dedup();
    let mapping = |branch: &[String]| -> Vec<usize> {
        branch
            .iter()
            .filter_map(|name| reads.iter().position(|r| r == name).map(|ix| ix + 1))
            .collect()
    };
    Ok((
        Box::new(ConstantIf {
            then_branch: Branch {
                mapping: mapping(&then_reads),
                body: then_body,
            },
            else_branch: Branch {
                mapping: mapping(&else_reads),
                body: else_body,
            },
        }),
        reads,
    ))
}

/// One branch: its body, and for each of its inputs the node input it reads.
#[derive(Debug, Clone)]
struct Branch {
    body: InferenceModel,
    mapping: Vec<usize>,
}

#[derive(Debug, Clone)]
pub(crate) struct ConstantIf {
    then_branch: Branch,
    else_branch: Branch,
}

impl PartialEq for ConstantIf {
    fn eq(&self, _: &Self) -> bool {
        false
    }
}
impl Eq for ConstantIf {}

impl ConstantIf {
    fn branch(&self, cond: bool) -> &Branch {
        if cond {
            &self.then_branch
        } else {
            &self.else_branch
        }
    }

    fn branch_mut(&mut self, cond: bool) -> &mut Branch {
        if cond {
            &mut self.then_branch
        } else {
            &mut self.else_branch
        }
    }
}

impl Op for ConstantIf {
    fn name(&self) -> StaticName {
        "If".into()
    }

    not_a_typed_op!();
}

impl EvalOp for ConstantIf {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let branch = self.branch(inputs[0].cast_to_scalar::<bool>()?);
        let inputs: TVec<TValue> = branch
            .mapping
            .iter()
            .map(|&ix| inputs[ix].clone())
            .collect();
        branch.body.clone().into_runnable()?.run(inputs)
    }
}

impl InferenceOp for ConstantIf {
    fn infer_facts(
        &mut self,
        inputs: TVec<&InferenceFact>,
        outputs: TVec<&InferenceFact>,
        observed: TVec<&InferenceFact>,
    ) -> TractResult<(
        TVec<InferenceFact>,
        TVec<InferenceFact>,
        TVec<InferenceFact>,
    )> {
        let mut inputs: TVec<InferenceFact> = inputs.into_iter().cloned().collect();
        let mut outputs: TVec<InferenceFact> = outputs.into_iter().cloned().collect();
        loop {
            let mut changed = inputs[0]
                .datum_type
                .unify_with(&bool::datum_type().into())?;
            let known = inputs[0]
                .value
                .concretize()
                .map(|c| c.cast_to_scalar::<bool>())
                .transpose()?;
            // The branches analysed: the one taken when it is known, else both.
            let taken: Vec<bool> = match known {
                Some(cond) => vec![cond],
                None => vec![true, false],
            };
            for &cond in &taken {
                let branch = self.branch_mut(cond);
                for (body_ix, outer_ix) in branch.mapping.iter().enumerate() {
                    changed |= branch
                        .body
                        .input_fact_mut(body_ix)?
                        .unify_with_mut(&mut inputs[*outer_ix])?;
                }
                for (ix, output) in outputs.iter_mut().enumerate() {
                    let fact = branch.body.output_fact_mut(ix)?;
                    if known.is_some() {
                        changed |= fact.unify_with_mut(output)?;
                    } else {
                        changed |= fact.shape.unify_with_mut(&mut output.shape)?;
                        changed |= fact.datum_type.unify_with_mut(&mut output.datum_type)?;
                    }
                }
                changed |= branch.body.analyse(false)?;
            }
            if !changed {
                return Ok((inputs, outputs, observed.into_iter().cloned().collect()));
            }
        }
    }

    fn nboutputs(&self) -> TractResult<usize> {
        let (then_n, else_n) = (
            self.then_branch.body.outputs.len(),
            self.else_branch.body.outputs.len(),
        );
        ensure!(
            then_n == else_n,
            "If: then_branch gives {then_n} outputs, else_branch {else_n}"
        );
        Ok(then_n)
    }

    fn to_typed(
        &self,
        source: &InferenceModel,
        node: &InferenceNode,
        target: &mut TypedModel,
        mapping: &HashMap<OutletId, OutletId>,
    ) -> TractResult<TVec<OutletId>> {
        let inputs: TVec<OutletId> = node.inputs.iter().map(|o| mapping[o]).collect();
        let known = source
            .outlet_fact(node.inputs[0])?
            .value
            .concretize()
            .map(|c| c.cast_to_scalar::<bool>())
            .transpose()?;
        let op = match known {
            // Only the branch taken is typed; declutter inlines it.
            Some(cond) => {
                let branch = self.branch(cond);
                let body = branch.body.clone().into_typed()?;
                IfThenElse {
                    then_body: body.clone(),
                    then_input_mapping: branch.mapping.clone(),
                    else_body: body,
                    else_input_mapping: branch.mapping.clone(),
                }
            }
            None => IfThenElse {
                then_body: self.then_branch.body.clone().into_typed()?,
                then_input_mapping: self.then_branch.mapping.clone(),
                else_body: self.else_branch.body.clone().into_typed()?,
                else_input_mapping: self.else_branch.mapping.clone(),
            },
        };
        target.wire_node(&node.name, op, &inputs)
    }

    as_op!();
}
