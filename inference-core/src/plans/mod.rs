//! The execution plans a model runs on. One plan with symbolic dims serves every request
//! shape; a concrete plan lets tract choose kernels by size (convolutions off generic
//! im2col, products off matrix-vector kernels), and some graphs only type with concrete
//! dims at all. `pack-models` decided which plans each model runs on, proved the answers
//! equal, and recorded it in the lock (`plans`): `rows` runs a batch-1 plan once per row;
//! `buckets` pads a text batch up to one of a few sequence lengths, each length's plan built
//! on first use; `per-shape` builds a plan for each concrete request shape on first use,
//! from the typed graph or from the ONNX graph itself. Plans built on first use live in a
//! bounded [`cache::PlanCache`].

pub(crate) mod cache;

use std::collections::HashMap;
use std::time::Duration;

use model_lock::{Dim, ModelEntry, Plans as Shapes, ShapeSource, TensorSpec, MAX_BUCKETS};
use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::{Factoid, InferenceFact};

use crate::loader::Plan;
use crate::lookup::{index_limits, IndexLimit};
use crate::work::WorkEstimate;
pub use cache::PlanCacheLimits;
use cache::{PlanCache, ShapeKey};

/// A plan ready to run, with what it costs and the kernels it chose.
#[derive(Debug)]
pub(crate) struct Built {
    pub plan: Plan,
    pub work: WorkEstimate,
    /// The plan's matrix-product kernels (see [`matmul_kernels`]).
    pub kernels: String,
    /// Memory the plan holds itself: its constants, packed for its kernels.
    pub bytes: u64,
    /// Inputs that index a table, where the plan's own graph says (per-shape plans from
    /// ONNX: the model had no typed graph to read them from at load).
    pub index_limits: Option<Vec<IndexLimit>>,
}

impl Built {
    /// Codegen for a decluttered graph: kernels chosen, weights packed, the plan built.
    fn optimize(mut model: TypedModel) -> Result<Self, String> {
        model
            .optimize()
            .map_err(|e| format!("cannot optimize the model: {e:#}"))?;
        let kernels = matmul_kernels(&model);
        let bytes = constant_bytes(&model);
        let plan = model
            .into_runnable()
            .map_err(|e| format!("cannot build the execution plan: {e:#}"))?;
        Ok(Built {
            work: WorkEstimate::of(&plan),
            plan,
            kernels,
            bytes,
            index_limits: None,
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
    PerShape(Box<PerShape>),
}

/// Plans per sequence length, built from the kept decluttered graph when a request first
/// needs one. Text requests come padded to a bucket length, so they need at most one plan
/// per bucket; a raw-token request gets a plan for its own length.
#[derive(Debug)]
pub(crate) struct Buckets {
    model: String,
    source: TypedModel,
    symbol: Symbol,
    /// The input and axis the sequence length is read from.
    input: usize,
    axis: usize,
    cache: PlanCache,
}

/// What per-shape plans are specialised from.
#[derive(Debug)]
pub(crate) enum Source {
    /// The decluttered graph with its symbolic dims: each symbol set from the request.
    Typed(TypedModel),
    /// The ONNX graph as decoded, inputs typed but not fixed: typed anew for each shape.
    Onnx(InferenceModel),
}

/// A plan per concrete request shape (one row's, with `rows`), built on first use.
#[derive(Debug)]
pub(crate) struct PerShape {
    model: String,
    source: Source,
    rows: bool,
    /// The model's inputs: names for messages, and what a refused shape is told it takes.
    inputs: Vec<TensorSpec>,
    cache: PlanCache,
}

/// What one request runs on.
pub(crate) struct Runner {
    built: Arc<Built>,
    rows: bool,
    /// Set when this request built the plan: the shape and how long the build took.
    pub(crate) build: Option<PlanBuild>,
}

/// A plan built on first use of a shape, for the log and the metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanBuild {
    pub model: String,
    /// The shape, as `[1,3,640,640]` (inputs separated by `; `).
    pub shape: String,
    pub duration: Duration,
}

/// Why a request has no plan: its shape cannot run on this model (400), or something went
/// wrong that is not the request's fault.
#[derive(Debug)]
pub(crate) enum NoPlan {
    Shape(String),
    Internal(String),
}

impl Plans {
    /// The plans `entry.plans` asks for, from the decluttered graph (for rows, already typed
    /// with the batch at 1). Symbolic and rows plans are built now; bucket and per-shape
    /// plans when first needed (declared shapes now, if the lock says `prebuild`).
    pub(crate) fn new(
        model: TypedModel,
        entry: &ModelEntry,
        limits: PlanCacheLimits,
    ) -> Result<Self, String> {
        Ok(match &entry.plans {
            Shapes::Symbolic => Plans::Symbolic(Arc::new(Built::optimize(model)?)),
            Shapes::Rows => Plans::Rows(Arc::new(Built::optimize(model)?)),
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
                    cache: PlanCache::new(PlanCacheLimits {
                        max_plans: limits.max_plans.min(MAX_BUCKETS),
                        ..limits
                    }),
                }))
            }
            Shapes::PerShape { .. } => Self::per_shape(Source::Typed(model), entry, limits)?,
        })
    }

    /// Per-shape plans from `source`; the declared shapes built now when the lock asks.
    pub(crate) fn per_shape(
        source: Source,
        entry: &ModelEntry,
        limits: PlanCacheLimits,
    ) -> Result<Self, String> {
        let Shapes::PerShape {
            rows,
            declared,
            prebuild,
            ..
        } = &entry.plans
        else {
            return Err("per-shape plans asked of a model packed without them".into());
        };
        let per_shape = PerShape {
            model: entry.name.clone(),
            source,
            rows: *rows,
            inputs: entry.inputs.clone(),
            cache: PlanCache::new(limits),
        };
        if *prebuild {
            for shape in declared {
                let key = per_shape.declared_key(shape)?;
                per_shape.plan(&key).map_err(|e| match e {
                    NoPlan::Shape(why) | NoPlan::Internal(why) => {
                        format!("declared shape {key:?}: {why}")
                    }
                })?;
            }
        }
        Ok(Plans::PerShape(Box::new(per_shape)))
    }

    /// The kernels of the plans built so far.
    pub(crate) fn kernels(&self) -> String {
        match self {
            Plans::Symbolic(b) | Plans::Rows(b) => b.kernels.clone(),
            Plans::Buckets(_) => "(built per sequence length on first use)".into(),
            Plans::PerShape(_) => "(built per request shape on first use)".into(),
        }
    }

    /// The plan for these inputs, built now if it is a bucket or per-shape plan not built
    /// yet.
    pub(crate) fn runner(&self, inputs: &[TValue]) -> Result<Runner, NoPlan> {
        match self {
            Plans::Symbolic(b) => Ok(Runner {
                built: b.clone(),
                rows: false,
                build: None,
            }),
            Plans::Rows(b) => Ok(Runner {
                built: b.clone(),
                rows: true,
                build: None,
            }),
            Plans::Buckets(buckets) => buckets.runner(inputs).map_err(NoPlan::Internal),
            Plans::PerShape(per_shape) => per_shape.runner(inputs),
        }
    }

    /// Whether a request of these shapes would build a plan first (not built yet).
    #[cfg(test)]
    pub(crate) fn would_build(&self, inputs: &[TValue]) -> bool {
        match self {
            Plans::PerShape(p) => !p.cache.contains(&p.key_of(inputs)),
            _ => false,
        }
    }

    /// How many plans are kept on first use, and the memory they hold (0 for models with
    /// only plans built at load).
    #[cfg(test)]
    pub(crate) fn cached(&self) -> (usize, u64) {
        match self {
            Plans::Symbolic(_) | Plans::Rows(_) => (0, 0),
            Plans::Buckets(b) => b.cache.held(),
            Plans::PerShape(p) => p.cache.held(),
        }
    }
}

impl Buckets {
    fn runner(&self, inputs: &[TValue]) -> Result<Runner, String> {
        let length = inputs
            .get(self.input)
            .and_then(|t| t.shape().get(self.axis))
            .copied()
            .ok_or("the request has no sequence axis")?;
        let cached = self.cache.get_or_build(&vec![vec![length]], || {
            Built::optimize(concrete(
                &self.source,
                &HashMap::from([(self.symbol.clone(), TDim::from(length as i64))]),
            )?)
        })?;
        let build = cached.build_time.map(|duration| {
            let build = PlanBuild {
                model: self.model.clone(),
                shape: format!("sequence {length}"),
                duration,
            };
            build.log(&cached.built);
            build
        });
        Ok(Runner {
            built: cached.built,
            rows: false,
            build,
        })
    }
}

impl PerShape {
    /// The shape key of a request: its inputs' shapes, the batch at 1 when rows run one by
    /// one.
    fn key_of(&self, inputs: &[TValue]) -> ShapeKey {
        inputs
            .iter()
            .map(|t| {
                let mut shape = t.shape().to_vec();
                if self.rows {
                    if let Some(batch) = shape.first_mut() {
                        *batch = 1;
                    }
                }
                shape
            })
            .collect()
    }

    /// The key of a shape the manifest declared (input name → dims).
    fn declared_key(
        &self,
        shape: &std::collections::BTreeMap<String, Vec<u64>>,
    ) -> Result<ShapeKey, String> {
        self.inputs
            .iter()
            .map(|spec| {
                let dims = shape.get(&spec.name).ok_or_else(|| {
                    format!("a declared shape has no dims for input {:?}", spec.name)
                })?;
                let mut dims: Vec<usize> = dims.iter().map(|d| *d as usize).collect();
                if self.rows {
                    if let Some(batch) = dims.first_mut() {
                        *batch = 1;
                    }
                }
                Ok(dims)
            })
            .collect()
    }

    fn runner(&self, inputs: &[TValue]) -> Result<Runner, NoPlan> {
        let key = self.key_of(inputs);
        let cached = self.plan(&key)?;
        let build = cached.build_time.map(|duration| {
            let build = PlanBuild {
                model: self.model.clone(),
                shape: show_key(&key),
                duration,
            };
            build.log(&cached.built);
            build
        });
        Ok(Runner {
            built: cached.built,
            rows: self.rows,
            build,
        })
    }

    fn plan(&self, key: &ShapeKey) -> Result<cache::Cached, NoPlan> {
        self.cache
            .get_or_build(key, || self.build(key))
            .map_err(NoPlan::Shape)
    }

    /// A plan for exactly these shapes. Failing is the shape's fault: the graph was proved
    /// to serve other shapes at pack time.
    fn build(&self, key: &ShapeKey) -> Result<Built, String> {
        let refused = |e: String| {
            let first = e.lines().next().unwrap_or_default();
            let first: String = first.chars().take(300).collect();
            format!(
                "the model cannot run on inputs of shape {}: {first}. It takes {}",
                show_key(key),
                self.accepted()
            )
        };
        let typed = match &self.source {
            Source::Typed(model) => {
                let mut values = HashMap::new();
                for (input, dims) in model.inputs.iter().zip(key) {
                    let fact = model.outlet_fact(*input).map_err(|e| format!("{e:#}"))?;
                    if fact.rank() != dims.len() {
                        return Err(refused(format!(
                            "rank {} instead of {}",
                            dims.len(),
                            fact.rank()
                        )));
                    }
                    for (d, n) in fact.shape.iter().zip(dims) {
                        if let TDim::Sym(symbol) = d {
                            values.insert(symbol.clone(), TDim::from(*n as i64));
                        }
                    }
                }
                concrete(model, &values).map_err(refused)?
            }
            Source::Onnx(model) => {
                let mut model = model.clone();
                for (ix, dims) in key.iter().enumerate() {
                    let dt = model
                        .input_fact(ix)
                        .ok()
                        .and_then(|f| f.datum_type.concretize())
                        .ok_or_else(|| format!("input {ix} has no element type"))?;
                    model
                        .set_input_fact(ix, InferenceFact::dt_shape(dt, dims.clone()))
                        .map_err(|e| refused(format!("{e:#}")))?;
                }
                let typed = model
                    .into_typed()
                    .and_then(|m| m.into_decluttered())
                    .map_err(|e| refused(format!("{e:#}")))?;
                typed
            }
        };
        if let Some(what) = crate::loader::negative_dim(&typed) {
            return Err(refused(format!(
                "an input too small for the graph ({what})"
            )));
        }
        let limits = matches!(self.source, Source::Onnx(_)).then(|| index_limits(&typed));
        let mut built = Built::optimize(typed).map_err(refused)?;
        built.index_limits = limits;
        Ok(built)
    }

    /// What the model takes, for a refused shape's message: the signature's inputs.
    fn accepted(&self) -> String {
        self.inputs
            .iter()
            .map(|s| {
                let dims: Vec<String> = s.shape.iter().map(|d| d.to_string()).collect();
                format!("{} [{}]", s.name, dims.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl PlanBuild {
    fn log(&self, built: &Built) {
        tracing::info!(
            model = %self.model,
            shape = %self.shape,
            build_ms = self.duration.as_secs_f64() * 1000.0,
            plan_mb = built.bytes as f64 / (1 << 20) as f64,
            kernels = %built.kernels,
            "plan built"
        );
    }
}

fn show_key(key: &ShapeKey) -> String {
    key.iter()
        .map(|dims| {
            let dims: Vec<String> = dims.iter().map(usize::to_string).collect();
            format!("[{}]", dims.join(","))
        })
        .collect::<Vec<_>>()
        .join("; ")
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

    /// Whether these inputs are too small for the graph (a size it computes from them comes
    /// out negative).
    pub(crate) fn too_small(&self, inputs: &[TValue]) -> bool {
        self.built.work.negative(inputs)
    }

    /// Index limits the plan itself knows (per-shape plans typed from ONNX).
    pub(crate) fn index_limits(&self) -> Option<&[IndexLimit]> {
        self.built.index_limits.as_deref()
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

/// The graph with `values` bound to its symbols, decluttered again (concrete shapes
/// simplify).
pub(crate) fn concrete(
    model: &TypedModel,
    values: &HashMap<Symbol, TDim>,
) -> Result<TypedModel, String> {
    let shown = || {
        values
            .iter()
            .map(|(s, v)| format!("{s} = {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut fixed = model
        .set_symbols(values)
        .map_err(|e| format!("cannot fix {}: {e:#}", shown()))?;
    fixed
        .declutter()
        .map_err(|e| format!("cannot declutter the model with {}: {e:#}", shown()))?;
    Ok(fixed)
}

/// The symbol that is the first dim of every input and output: what `rows` fixes to 1.
pub(crate) fn batch_dim(entry: &ModelEntry) -> Option<String> {
    batch_of(&entry.inputs, &entry.outputs)
}

/// [`batch_dim`] of a signature.
pub(crate) fn batch_of(inputs: &[TensorSpec], outputs: &[TensorSpec]) -> Option<String> {
    let first = |s: &TensorSpec| match s.shape.first() {
        Some(Dim::Symbol(name)) => Some(name.clone()),
        _ => None,
    };
    let name = first(inputs.first()?)?;
    inputs
        .iter()
        .chain(outputs)
        .all(|s| first(s).as_ref() == Some(&name))
        .then_some(name)
}

/// `inputs` with the batch symbol `batch` fixed to 1: what a rows plan is typed with.
pub(crate) fn with_batch_one(inputs: &[TensorSpec], batch: &str) -> Vec<TensorSpec> {
    inputs
        .iter()
        .map(|s| TensorSpec {
            shape: s
                .shape
                .iter()
                .map(|d| match d {
                    Dim::Symbol(name) if name == batch => Dim::Fixed(1),
                    other => other.clone(),
                })
                .collect(),
            ..s.clone()
        })
        .collect()
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

/// Memory a plan's constants hold (weights, packed for its kernels).
fn constant_bytes(model: &TypedModel) -> u64 {
    model
        .nodes()
        .iter()
        .filter(|n| n.op_is::<tract_onnx::tract_core::ops::konst::Const>())
        .filter_map(|n| model.outlet_fact(OutletId::new(n.id, 0)).ok())
        .filter_map(|f| f.mem_size().to_i64().ok())
        .map(|b| b.max(0) as u64)
        .sum()
}

/// Where the per-shape plans of a lock entry come from.
pub(crate) fn shape_source(entry: &ModelEntry) -> Option<ShapeSource> {
    match &entry.plans {
        Shapes::PerShape { from, .. } => Some(*from),
        _ => None,
    }
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

    fn limits() -> PlanCacheLimits {
        PlanCacheLimits::default()
    }

    /// The summing model with its batch at 1, as the loader types a rows model.
    fn batch_one() -> TypedModel {
        let model = summing_model();
        let one = HashMap::from([(model.symbols.sym("batch"), TDim::from(1))]);
        concrete(&model, &one).unwrap()
    }

    #[test]
    fn rows_run_one_at_a_time_and_answer_as_the_symbolic_plan() {
        let symbolic =
            Plans::new(summing_model(), &entry(Shapes::Symbolic, false), limits()).unwrap();
        let rows = Plans::new(batch_one(), &entry(Shapes::Rows, false), limits()).unwrap();
        let want = answer(&symbolic, input(3, 5));
        assert_eq!(want, vec![10.0, 35.0, 60.0]);
        assert_eq!(answer(&rows, input(3, 5)), want);
        // Every row's outputs are counted, and the working memory grows with them.
        let runner = rows.runner(&input(3, 5)).unwrap();
        assert!(runner.bytes(&input(300, 5), |_| true) > runner.bytes(&input(3, 5), |_| true));
    }

    #[test]
    fn bucket_plans_are_built_on_first_use_and_at_most_max_buckets_kept() {
        let shapes = Shapes::Buckets {
            lengths: vec![4, 8],
        };
        let plans = Plans::new(summing_model(), &entry(shapes, true), limits()).unwrap();
        assert_eq!(plans.cached().0, 0, "nothing at load");
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
        assert_eq!(plans.cached().0, MAX_BUCKETS);
    }

    #[test]
    fn buckets_need_a_text_model() {
        let shapes = Shapes::Buckets {
            lengths: vec![4, 8],
        };
        let e = Plans::new(summing_model(), &entry(shapes, false), limits()).unwrap_err();
        assert!(e.contains("plans = buckets needs"), "{e}");
    }

    fn per_shape(rows: bool) -> Shapes {
        Shapes::PerShape {
            rows,
            from: ShapeSource::Typed,
            declared: Vec::new(),
            prebuild: false,
        }
    }

    #[test]
    fn per_shape_plans_are_built_once_per_shape_and_answer_as_the_symbolic_plan() {
        let symbolic =
            Plans::new(summing_model(), &entry(Shapes::Symbolic, false), limits()).unwrap();
        let plans = Plans::new(batch_one(), &entry(per_shape(true), false), limits()).unwrap();
        assert!(plans.would_build(&input(3, 5)));
        let runner = plans.runner(&input(3, 5)).unwrap();
        assert!(runner.build.is_some(), "the first request builds");
        assert_eq!(answer(&plans, input(3, 5)), answer(&symbolic, input(3, 5)));
        // Rows: any batch of the same row shape reuses the plan.
        let again = plans.runner(&input(7, 5)).unwrap();
        assert!(again.build.is_none());
        assert!(Arc::ptr_eq(&runner.built, &again.built));
        assert!(!plans.would_build(&input(1, 5)));
        assert!(plans.would_build(&input(1, 6)));
        assert_eq!(answer(&plans, input(2, 6)), answer(&symbolic, input(2, 6)));
        assert_eq!(plans.cached().0, 2);
    }

    #[test]
    fn per_shape_plans_are_capped_by_count_and_memory() {
        let capped = PlanCacheLimits {
            max_plans: 3,
            max_bytes: u64::MAX,
        };
        let plans = Plans::new(batch_one(), &entry(per_shape(true), false), capped).unwrap();
        for length in 1..=10 {
            assert_eq!(answer(&plans, input(2, length)).len(), 2);
        }
        assert_eq!(plans.cached().0, 3, "least recently used evicted");
        // The most recent shapes stayed.
        assert!(!plans.would_build(&input(1, 10)));
        assert!(plans.would_build(&input(1, 1)));
        // A memory cap below one plan keeps only the newest.
        let tiny = PlanCacheLimits {
            max_plans: 8,
            max_bytes: 0,
        };
        let plans = Plans::new(batch_one(), &entry(per_shape(true), false), tiny).unwrap();
        for length in 1..=4 {
            answer(&plans, input(1, length));
        }
        assert!(plans.cached().0 <= 1 || plans.cached().1 == 0);
    }

    #[test]
    fn concurrent_first_requests_of_a_shape_build_one_plan() {
        let plans = Plans::new(batch_one(), &entry(per_shape(true), false), limits()).unwrap();
        let built: Vec<bool> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| plans.runner(&input(1, 9)).unwrap().build.is_some()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(built.iter().filter(|b| **b).count(), 1, "{built:?}");
        assert_eq!(plans.cached().0, 1);
    }

    #[test]
    fn a_shape_the_graph_cannot_run_is_refused_and_remembered() {
        let plans = Plans::new(batch_one(), &entry(per_shape(true), false), limits()).unwrap();
        let wrong_rank: TVec<TValue> = tvec![Tensor::zero::<i64>(&[1, 2, 3]).unwrap().into()];
        let Err(NoPlan::Shape(why)) = plans.runner(&wrong_rank) else {
            panic!("a refusal expected")
        };
        assert!(
            why.contains("[1,2,3]") && why.contains("It takes x [batch, sequence]"),
            "{why}"
        );
        let Err(NoPlan::Shape(again)) = plans.runner(&wrong_rank) else {
            panic!("a refusal expected")
        };
        assert_eq!(why, again);
    }
}
