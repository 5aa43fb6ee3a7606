//! The execution plans a model runs on. One plan with symbolic dims serves every request
//! shape; a concrete plan lets tract choose kernels by size (convolutions off generic
//! im2col, products off matrix-vector kernels). `pack-models` measured which serves each
//! model faster, proved the answers equal, and recorded it in the lock (`plans`): `rows`
//! runs a batch-1 plan once per row; `buckets` pads a text batch up to one of a few
//! sequence lengths, each length's plan built on first use from the decluttered graph kept
//! for that, and kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use model_lock::{Dim, ModelEntry, Plans as Shapes, TensorSpec, MAX_BUCKETS};
use tract_onnx::prelude::*;

use crate::loader::Plan;
use crate::work::WorkEstimate;

/// A plan ready to run, with what it costs and the kernels it chose.
#[derive(Debug)]
pub(crate) struct Built {
    pub plan: Plan,
    pub work: WorkEstimate,
    /// The plan's matrix-product kernels (see [`matmul_kernels`]).
    pub kernels: String,
}

impl Built {
    /// Codegen for a decluttered graph: kernels chosen, weights packed, the plan built.
    fn optimize(mut model: TypedModel) -> Result<Self, String> {
        model
            .optimize()
            .map_err(|e| format!("cannot optimize the model: {e:#}"))?;
        let kernels = matmul_kernels(&model);
        let plan = model
            .into_runnable()
            .map_err(|e| format!("cannot build the execution plan: {e:#}"))?;
        Ok(Built {
            work: WorkEstimate::of(&plan),
            plan,
            kernels,
        })
    }
}

/// The plans of one loaded model, as its lock entry's `plans` says.
#[derive(Debug)]
pub(crate) enum Plans {
    Symbolic(Arc<Built>),
    /// The batch dim fixed to 1.
    Rows(Arc<Built>),
    Buckets(Box<Buckets>),
}

/// Plans per sequence length, built from the kept decluttered graph when a request first
/// needs one. Text requests come padded to a bucket length, so they need at most one plan
/// per bucket; a raw-token request gets a plan for its own length. The least recently used
/// plan goes when more than [`MAX_BUCKETS`] are kept.
#[derive(Debug)]
pub(crate) struct Buckets {
    model: String,
    source: TypedModel,
    symbol: Symbol,
    /// The input and axis the sequence length is read from.
    input: usize,
    axis: usize,
    /// Most recently used last.
    built: Mutex<Vec<(usize, Arc<Built>)>>,
}

/// What one request runs on.
pub(crate) struct Runner {
    built: Arc<Built>,
    rows: bool,
}

impl Plans {
    /// The plans `entry.plans` asks for, from the decluttered graph. Symbolic and rows plans
    /// are built now; bucket plans when first needed.
    pub(crate) fn new(model: TypedModel, entry: &ModelEntry) -> Result<Self, String> {
        Ok(match &entry.plans {
            Shapes::Symbolic => Plans::Symbolic(Arc::new(Built::optimize(model)?)),
            Shapes::Rows => {
                let batch = batch_dim(entry).ok_or(
                    "plans = rows needs one symbolic dim first in every input and output; pack the model again",
                )?;
                let fixed = concrete(&model, &model.symbols.sym(&batch), 1)?;
                Plans::Rows(Arc::new(Built::optimize(fixed)?))
            }
            Shapes::Buckets { .. } => {
                let (input, axis, name) = sequence_dim(entry).ok_or(
                    "plans = buckets needs a text model whose inputs are [batch, sequence]; pack the model again",
                )?;
                Plans::Buckets(Box::new(Buckets {
                    model: entry.name.clone(),
                    symbol: model.symbols.sym(&name),
                    source: model,
                    input,
                    axis,
                    built: Mutex::new(Vec::new()),
                }))
            }
        })
    }

    /// The kernels of the plans built so far.
    pub(crate) fn kernels(&self) -> String {
        match self {
            Plans::Symbolic(b) | Plans::Rows(b) => b.kernels.clone(),
            Plans::Buckets(_) => "(built per sequence length on first use)".into(),
        }
    }

    /// The plan for these inputs, built now if it is a bucket plan not built yet.
    pub(crate) fn runner(&self, inputs: &[TValue]) -> Result<Runner, String> {
        match self {
            Plans::Symbolic(b) => Ok(Runner {
                built: b.clone(),
                rows: false,
            }),
            Plans::Rows(b) => Ok(Runner {
                built: b.clone(),
                rows: true,
            }),
            Plans::Buckets(buckets) => Ok(Runner {
                built: buckets.plan_for(inputs)?,
                rows: false,
            }),
        }
    }

    /// Input values of the largest request within `budget` bytes of working memory, where
    /// the plans can tell (see [`WorkEstimate::largest_request`]).
    pub(crate) fn largest_request(&self, budget: u64) -> Option<u64> {
        match self {
            Plans::Symbolic(b) => b.work.largest_request(budget),
            Plans::Rows(_) | Plans::Buckets(_) => None,
        }
    }
}

impl Buckets {
    fn plan_for(&self, inputs: &[TValue]) -> Result<Arc<Built>, String> {
        let length = inputs
            .get(self.input)
            .and_then(|t| t.shape().get(self.axis))
            .copied()
            .ok_or("the request has no sequence axis")?;
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ix) = built.iter().position(|(l, _)| *l == length) {
            let hit = built.remove(ix);
            let plan = hit.1.clone();
            built.push(hit);
            return Ok(plan);
        }
        let started = Instant::now();
        let plan = Arc::new(Built::optimize(concrete(
            &self.source,
            &self.symbol,
            length as i64,
        )?)?);
        tracing::info!(
            model = %self.model,
            length,
            optimize_ms = started.elapsed().as_secs_f64() * 1000.0,
            kernels = %plan.kernels,
            "plan built"
        );
        if built.len() >= MAX_BUCKETS {
            built.remove(0);
        }
        built.push((length, plan.clone()));
        Ok(plan)
    }
}

impl Runner {
    /// The working memory these inputs need (see [`WorkEstimate`]); row by row, one row's
    /// values at a time and every row's outputs.
    pub(crate) fn bytes(&self, inputs: &[TValue], returned: impl Fn(usize) -> bool) -> u64 {
        let work = &self.built.work;
        if self.rows {
            let rows = inputs.first().map_or(1, |t| t.shape()[0]) as u64;
            work.rows_bytes(inputs, rows, returned)
        } else {
            work.bytes(inputs, returned)
        }
    }

    pub(crate) fn run(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        if !self.rows {
            return self.built.plan.run(inputs);
        }
        let rows = inputs.first().map_or(0, |t| t.shape()[0]);
        let mut outputs: Vec<Vec<TValue>> = Vec::new();
        for row in 0..rows {
            let one: TVec<TValue> = inputs
                .iter()
                .map(|t| Ok(t.slice(0, row, row + 1)?.into_tvalue()))
                .collect::<TractResult<_>>()?;
            let answer = self.built.plan.run(one)?;
            outputs.resize_with(answer.len(), Vec::new);
            for (all, value) in outputs.iter_mut().zip(answer) {
                all.push(value);
            }
        }
        outputs
            .iter()
            .map(|parts| Ok(Tensor::stack_tensors(0, parts)?.into_tvalue()))
            .collect()
    }
}

/// The graph with `symbol` bound to `value`, decluttered again (concrete shapes simplify).
fn concrete(model: &TypedModel, symbol: &Symbol, value: i64) -> Result<TypedModel, String> {
    let subs = HashMap::from([(symbol.clone(), TDim::from(value))]);
    let mut fixed = model
        .set_symbols(&subs)
        .map_err(|e| format!("cannot fix {symbol} = {value}: {e:#}"))?;
    fixed
        .declutter()
        .map_err(|e| format!("cannot declutter the model with {symbol} = {value}: {e:#}"))?;
    Ok(fixed)
}

/// The symbol that is the first dim of every input and output: what `rows` fixes to 1.
pub(crate) fn batch_dim(entry: &ModelEntry) -> Option<String> {
    let first = |s: &TensorSpec| match s.shape.first() {
        Some(Dim::Symbol(name)) => Some(name.clone()),
        _ => None,
    };
    let name = first(entry.inputs.first()?)?;
    entry
        .inputs
        .iter()
        .chain(&entry.outputs)
        .all(|s| first(s).as_ref() == Some(&name))
        .then_some(name)
}

/// A text model's sequence dim: input, axis and symbol name, when every input is
/// `[batch, sequence]` with the same symbol.
pub(crate) fn sequence_dim(entry: &ModelEntry) -> Option<(usize, usize, String)> {
    entry.pipeline.as_ref()?;
    let second = |s: &TensorSpec| match s.shape.as_slice() {
        [_, Dim::Symbol(name)] => Some(name.clone()),
        _ => None,
    };
    let name = second(entry.inputs.first()?)?;
    entry
        .inputs
        .iter()
        .all(|s| second(s).as_ref() == Some(&name))
        .then_some((0, 1, name))
}

/// The matrix-product kernels the plan runs and how many products use each, e.g.
/// `avx2_mmm_f32_16x6 ×12`: what decides warm latency, for the init log and the bench.
fn matmul_kernels(model: &TypedModel) -> String {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for node in &model.nodes {
        if let Some(op) = node.op_as::<tract_onnx::tract_core::ops::matmul::optimized::OptMatMul>()
        {
            for mmm in &op.mmm {
                *counts.entry(mmm.name().to_string()).or_default() += 1;
            }
        }
    }
    counts
        .iter()
        .map(|(name, n)| format!("{name} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use model_lock::{DType, TextPipeline, TextTask};
    use tract_onnx::tract_core::ops::cast::cast;
    use tract_onnx::tract_core::ops::nn::{Reduce, Reducer};

    /// `x[batch, sequence]` (i64) → f32 → sum over the sequence → `y[batch, 1]`.
    fn summing_model() -> TypedModel {
        let mut model = TypedModel::default();
        let batch = model.symbols.sym("batch");
        let sequence = model.symbols.sym("sequence");
        let x = model
            .add_source("x", i64::fact([TDim::from(batch), TDim::from(sequence)]))
            .unwrap();
        let f = model.wire_node("f", cast(f32::datum_type()), &[x]).unwrap();
        let y = model
            .wire_node("y", Reduce::new(tvec![1], Reducer::Sum), &f)
            .unwrap();
        model.select_output_outlets(&y).unwrap();
        model.into_decluttered().unwrap()
    }

    fn entry(plans: Shapes, text: bool) -> ModelEntry {
        let spec = |name: &str, dtype, shape: Vec<Dim>| TensorSpec {
            name: name.into(),
            dtype,
            shape,
        };
        let sym = |s: &str| Dim::Symbol(s.into());
        ModelEntry {
            pipeline: text.then_some(TextPipeline {
                max_length: 16,
                max_batch: 8,
                ..TextPipeline::new(TextTask::Embedding)
            }),
            plans,
            ..crate::test_models::entry(
                vec![spec("x", DType::I64, vec![sym("batch"), sym("sequence")])],
                vec![spec("y", DType::F32, vec![sym("batch"), Dim::Fixed(1)])],
            )
        }
    }

    fn input(rows: usize, length: usize) -> TVec<TValue> {
        let values: Vec<i64> = (0..(rows * length) as i64).collect();
        tvec![Tensor::from_shape(&[rows, length], &values).unwrap().into()]
    }

    fn answer(plans: &Plans, inputs: TVec<TValue>) -> Vec<f32> {
        let runner = plans.runner(&inputs).unwrap();
        let out = runner.run(inputs).unwrap();
        out[0]
            .try_as_plain_ram()
            .unwrap()
            .as_slice::<f32>()
            .unwrap()
            .to_vec()
    }

    #[test]
    fn rows_run_one_at_a_time_and_answer_as_the_symbolic_plan() {
        let symbolic = Plans::new(summing_model(), &entry(Shapes::Symbolic, false)).unwrap();
        let rows = Plans::new(summing_model(), &entry(Shapes::Rows, false)).unwrap();
        let want = answer(&symbolic, input(3, 5));
        assert_eq!(want, vec![10.0, 35.0, 60.0]);
        assert_eq!(answer(&rows, input(3, 5)), want);
        // Every row's outputs are counted, and the working memory grows with them.
        let runner = rows.runner(&input(3, 5)).unwrap();
        assert!(runner.bytes(&input(300, 5), |_| true) > runner.bytes(&input(3, 5), |_| true));
    }

    #[test]
    fn rows_need_a_batch_dim_first_everywhere() {
        let mut entry = entry(Shapes::Rows, false);
        entry.outputs[0].shape = vec![Dim::Fixed(1)];
        let e = Plans::new(summing_model(), &entry).unwrap_err();
        assert!(e.contains("plans = rows needs"), "{e}");
    }

    #[test]
    fn bucket_plans_are_built_on_first_use_and_at_most_max_buckets_kept() {
        let shapes = Shapes::Buckets {
            lengths: vec![4, 8],
        };
        let plans = Plans::new(summing_model(), &entry(shapes, true)).unwrap();
        let Plans::Buckets(buckets) = &plans else {
            panic!("bucket plans expected")
        };
        assert!(buckets.built.lock().unwrap().is_empty(), "nothing at load");
        assert_eq!(answer(&plans, input(2, 4)), vec![6.0, 22.0]);
        let first = plans.runner(&input(5, 4)).unwrap().built;
        let again = plans.runner(&input(1, 4)).unwrap().built;
        assert!(
            Arc::ptr_eq(&first, &again),
            "one plan per length, any batch"
        );
        for length in 1..=(MAX_BUCKETS + 3) {
            assert_eq!(answer(&plans, input(1, length)).len(), 1);
        }
        assert_eq!(buckets.built.lock().unwrap().len(), MAX_BUCKETS);
    }

    #[test]
    fn buckets_need_a_text_model() {
        let shapes = Shapes::Buckets {
            lengths: vec![4, 8],
        };
        let e = Plans::new(summing_model(), &entry(shapes, false)).unwrap_err();
        assert!(e.contains("plans = buckets needs"), "{e}");
    }
}
