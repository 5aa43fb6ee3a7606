//! What one request will cost, known before it runs. Every value the plan makes is sized
//! from its shape with the request's dims and lives from the step that makes it to the last
//! step that reads it; the peak of that sum, plus the encoded answer, is the working memory
//! the request needs. A request over the model's caps, or needing more memory than the
//! function has left, is refused with a 413 before a tensor is allocated for it.

use model_lock::{Dim, ModelEntry};
use tract_onnx::prelude::*;

use crate::error::RequestError;
use crate::loader::Plan;

/// What one output value costs while its answer is built: a `serde_json::Value` (32 bytes)
/// in the flat list and again in the nested one.
const ENCODE_BYTES_PER_VALUE: u64 = 64;
/// Kept free beyond the estimate: allocator slack, the runtime's buffers, the JSON answer.
pub(crate) const RESERVE_BYTES: u64 = 32 << 20;
// The plan's values are counted at 5/4 of their size: kernels' scratch space, the first
// run's lazily built state and allocator rounding are not values. Measured (VmHWM growth
// over one run, one thread): MiniLM at 16×128 to 64×512 and PP-OCRv4 det at 1 to 4 images
// of 640×640 stay under values × 1.25 + RESERVE_BYTES; the bare values fall up to 30% short
// on the conv net.

/// A value of the plan: its size in bytes as a function of the symbols, and the first and
/// last steps it is alive in.
#[derive(Debug)]
struct Value {
    bytes: TDim,
    born: usize,
    dies: usize,
}

/// Where a symbol's value is read from: an axis of an input.
#[derive(Debug)]
struct SymbolAt {
    input: usize,
    axis: usize,
    symbol: Symbol,
}

/// The plan's values and outputs, sized symbolically once at load.
#[derive(Debug)]
pub(crate) struct WorkEstimate {
    values: Vec<Value>,
    /// Elements of each model output, and its bytes.
    outputs: Vec<TDim>,
    output_bytes: Vec<TDim>,
    symbols: Vec<SymbolAt>,
}

impl WorkEstimate {
    pub(crate) fn of(plan: &Plan) -> Self {
        let model = plan.model();
        let order = plan.order_without_consts();
        let step_of: std::collections::HashMap<usize, usize> = order
            .iter()
            .enumerate()
            .map(|(step, node)| (*node, step))
            .collect();
        let last = order.len().saturating_sub(1);
        let mut values = Vec::new();
        for (step, &node) in order.iter().enumerate() {
            let node = model.node(node);
            // Inputs are already allocated when the estimate is made.
            if model.inputs.iter().any(|o| o.node == node.id) {
                continue;
            }
            for (slot, fact) in node.outputs.iter().enumerate() {
                let outlet = OutletId::new(node.id, slot);
                let dies = if model.outputs.contains(&outlet) {
                    last
                } else {
                    model
                        .outlet_successors(outlet)
                        .iter()
                        .filter_map(|s| step_of.get(&s.node))
                        .max()
                        .copied()
                        .unwrap_or(step)
                };
                values.push(Value {
                    bytes: bytes_of(&fact.fact),
                    born: step,
                    dies,
                });
            }
        }
        let volume = |o: &OutletId| {
            model
                .outlet_fact(*o)
                .map(|f| f.shape.volume())
                .unwrap_or_default()
        };
        let outputs = model.outputs.iter().map(volume).collect();
        let output_bytes = model
            .outputs
            .iter()
            .map(|o| model.outlet_fact(*o).map(bytes_of).unwrap_or_default())
            .collect();
        let mut symbols = Vec::new();
        for (input, outlet) in model.inputs.iter().enumerate() {
            let Ok(fact) = model.outlet_fact(*outlet) else {
                continue;
            };
            for (axis, dim) in fact.shape.iter().enumerate() {
                if let TDim::Sym(symbol) = dim {
                    symbols.push(SymbolAt {
                        input,
                        axis,
                        symbol: symbol.clone(),
                    });
                }
            }
        }
        WorkEstimate {
            values,
            outputs,
            output_bytes,
            symbols,
        }
    }

    /// Peak bytes of the plan's values plus the encoded outputs, for these inputs. A size
    /// that cannot be worked out counts as unbounded.
    pub(crate) fn bytes(&self, inputs: &[TValue], returned: impl Fn(usize) -> bool) -> u64 {
        self.bytes_with(&self.symbol_values(inputs), returned)
    }

    /// The same for a plan of one row run `rows` times: one row's values at a time, and
    /// every row's outputs, kept and then joined, and encoded.
    pub(crate) fn rows_bytes(
        &self,
        inputs: &[TValue],
        rows: u64,
        returned: impl Fn(usize) -> bool,
    ) -> u64 {
        let values = self.symbol_values(inputs);
        let outputs: u64 = self
            .output_bytes
            .iter()
            .map(|b| eval(b, &values))
            .fold(0, u64::saturating_add);
        let per_row = self
            .encode_bytes(&values, &returned)
            .saturating_add(outputs.saturating_mul(2));
        self.bytes_with(&values, |_| false)
            .saturating_add(per_row.saturating_mul(rows))
    }

    /// Whether a value's size comes out negative for these inputs: a request too small
    /// for the graph (audio shorter than a window), which would otherwise fail inside a
    /// kernel.
    pub(crate) fn negative(&self, inputs: &[TValue]) -> bool {
        // A plan of concrete shapes was checked when it was built.
        if self.symbols.is_empty() {
            return false;
        }
        let values = self.symbol_values(inputs);
        self.values
            .iter()
            .any(|v| v.bytes.eval_to_i64(&values).is_ok_and(|n| n < 0))
    }

    fn symbol_values(&self, inputs: &[TValue]) -> SymbolValues {
        let mut values = SymbolValues::default();
        for at in &self.symbols {
            if let Some(n) = inputs.get(at.input).and_then(|t| t.shape().get(at.axis)) {
                values.set(&at.symbol, *n as i64);
            }
        }
        values
    }

    fn encode_bytes(&self, values: &SymbolValues, returned: impl Fn(usize) -> bool) -> u64 {
        self.outputs
            .iter()
            .enumerate()
            .filter(|(ix, _)| returned(*ix))
            .map(|(_, n)| eval(n, values).saturating_mul(ENCODE_BYTES_PER_VALUE))
            .fold(0, u64::saturating_add)
    }

    fn bytes_with(&self, values: &SymbolValues, returned: impl Fn(usize) -> bool) -> u64 {
        let size = |d: &TDim| eval(d, values);
        // Sweep the steps: add a value when it is born, drop it after its last reader.
        let steps = self.values.iter().map(|v| v.dies + 1).max().unwrap_or(0);
        let mut delta = vec![0i128; steps + 1];
        for v in &self.values {
            let b = i128::from(size(&v.bytes));
            delta[v.born] += b;
            delta[v.dies + 1] -= b;
        }
        let (mut live, mut peak) = (0i128, 0i128);
        for d in delta {
            live += d;
            peak = peak.max(live);
        }
        let encode = self.encode_bytes(values, returned);
        let peak = u64::try_from(peak).unwrap_or(u64::MAX);
        (peak / 4).saturating_mul(5).saturating_add(encode)
    }
}

/// A value's bytes. A tensor of packed blocks (im2col's output, packed matrix operands)
/// holds one block per element: tract's own `mem_size` counts a single block.
fn bytes_of(fact: &TypedFact) -> TDim {
    let blocks: TDim = fact
        .exotic_fact()
        .iter()
        .flat_map(|it| it.buffer_sizes())
        .sum();
    fact.shape.volume() * (TDim::from(fact.datum_type.size_of() as i64) + blocks)
}

/// A size with the request's dims; one that cannot be worked out counts as unbounded.
fn eval(d: &TDim, values: &SymbolValues) -> u64 {
    d.eval_to_i64(values)
        .ok()
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(u64::MAX)
}

/// The model's caps (`limits` in the lock): input values in all, and each symbolic dim.
pub(crate) fn check_limits(
    entry: &ModelEntry,
    inputs: &[TValue],
    name_of: impl Fn(usize) -> String,
) -> Result<(), RequestError> {
    let limits = &entry.limits;
    for (i, (spec, t)) in entry.inputs.iter().zip(inputs).enumerate() {
        for (dim, n) in spec.shape.iter().zip(t.shape()) {
            let Dim::Symbol(name) = dim else { continue };
            if let Some(max) = limits.max_dims.get(name).filter(|max| *n as u64 > **max) {
                return Err(RequestError::OverLimit(format!(
                    "field \"{}\": {name} = {n}, more than this model takes in one request ({max}, limits.max_dims.{name})",
                    name_of(i)
                )));
            }
        }
    }
    if let Some(max) = limits.max_input_elements {
        let total: u64 = inputs.iter().map(|t| t.len() as u64).sum();
        if total > max {
            return Err(RequestError::OverLimit(format!(
                "the request sends {total} input values, more than this model takes in one request ({max}, limits.max_input_elements): send fewer rows"
            )));
        }
    }
    Ok(())
}

/// The memory a request of this many input values needs at the model's measured cost
/// (`memory` in the lock), against what the function has free: the cap on a request's size
/// that follows from the function's memory. A model without a measured cost (fixed
/// shapes), or a function whose memory is not known, has none.
pub(crate) fn check_cost(
    entry: &ModelEntry,
    inputs: &[TValue],
    memory_limit: Option<u64>,
) -> Result<(), RequestError> {
    let (Some(cost), Some(limit)) = (entry.memory, memory_limit) else {
        return Ok(());
    };
    let total: u64 = inputs.iter().map(|t| t.len() as u64).sum();
    let need = cost
        .bytes_per_input_element
        .saturating_mul(total)
        .saturating_add(cost.fixed_bytes);
    if need <= SMALL_BYTES {
        return Ok(());
    }
    let free = limit
        .saturating_sub(unreclaimable_bytes().unwrap_or(0))
        .saturating_sub(RESERVE_BYTES);
    if need <= free {
        return Ok(());
    }
    Err(RequestError::OverLimit(format!(
        "the request sends {total} input values; model {:?} needs about {} bytes of memory per input value (measured when it was packed), so the {} MB free of the function's {} MB take at most {} in one request: send fewer rows or smaller inputs, or raise the function's memory",
        entry.name,
        cost.bytes_per_input_element,
        mb(free),
        mb(limit),
        cost.largest_request(free)
    )))
}

/// Below this a request needs no check: the reserve covers it, and the classifier's
/// 0.2 ms answers need not read `/proc` each time.
const SMALL_BYTES: u64 = 1 << 20;

/// Refuses a request whose working memory does not fit what the function has left of its
/// memory setting.
pub(crate) fn check_memory(
    need: u64,
    memory_limit: Option<u64>,
    model: &str,
) -> Result<(), RequestError> {
    let Some(limit) = memory_limit.filter(|_| need > SMALL_BYTES) else {
        return Ok(());
    };
    let used = unreclaimable_bytes().unwrap_or(0);
    let free = limit.saturating_sub(used).saturating_sub(RESERVE_BYTES);
    if need <= free {
        return Ok(());
    }
    Err(RequestError::OverLimit(format!(
        "model {model:?} needs about {} MB of working memory for this request, and {} MB of the function's {} MB are free: send fewer rows or shorter inputs, or raise the function's memory",
        mb(need),
        mb(free),
        mb(limit)
    )))
}

fn mb(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}

/// The memory the process holds that the kernel cannot reclaim: resident pages less the
/// file-backed ones (`/proc/self/statm`: resident − shared). The embedded models are clean
/// pages of the binary's file, which the kernel drops and reads again under pressure, so
/// they do not count against a request, however many models are embedded. Linux; `None`
/// elsewhere.
fn unreclaimable_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let mut fields = statm.split_whitespace().skip(1);
    let resident: u64 = fields.next()?.parse().ok()?;
    let shared: u64 = fields.next()?.parse().ok()?;
    // Lambda's and every x86_64/arm64 Linux page this crate targets.
    Some(resident.saturating_sub(shared) * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;
    use model_lock::{DType, Limits, TensorSpec};

    #[test]
    fn a_matmul_chain_is_sized_from_the_request() {
        // x[batch, 64] · W[64, 256] → relu → · W2[256, 8]
        let mut model = TypedModel::default();
        let batch = model.symbols.sym("batch");
        let x = model
            .add_source("x", f32::fact([TDim::from(batch.clone()), 64.into()]))
            .unwrap();
        let w = model
            .add_const("w", Tensor::zero::<f32>(&[64, 256]).unwrap())
            .unwrap();
        let w2 = model
            .add_const("w2", Tensor::zero::<f32>(&[256, 8]).unwrap())
            .unwrap();
        let mm = |m: &mut TypedModel, name: &str, a, b| {
            m.wire_node(
                name,
                tract_onnx::tract_core::ops::einsum::EinSum::new(
                    "mk,kn->mn".parse().unwrap(),
                    f32::datum_type(),
                ),
                &[a, b],
            )
            .unwrap()[0]
        };
        let h = mm(&mut model, "h", x, w);
        let y = mm(&mut model, "y", h, w2);
        model.select_output_outlets(&[y]).unwrap();
        let plan = model.into_optimized().unwrap().into_runnable().unwrap();
        let work = WorkEstimate::of(&plan);
        let one = work.bytes(&[Tensor::zero::<f32>(&[1, 64]).unwrap().into()], |_| true);
        let many = work.bytes(&[Tensor::zero::<f32>(&[1000, 64]).unwrap().into()], |_| {
            true
        });
        // At least the hidden layer (1000 × 256 f32) and the encoded output.
        assert!(
            many >= 1000 * 256 * 4 + 1000 * 8 * ENCODE_BYTES_PER_VALUE,
            "{many}"
        );
        assert!(many > 500 * one, "{one} → {many}: grows with the batch");
        let none = work.bytes(&[Tensor::zero::<f32>(&[1000, 64]).unwrap().into()], |_| {
            false
        });
        assert_eq!(many - none, 1000 * 8 * ENCODE_BYTES_PER_VALUE);
    }

    #[test]
    fn caps_name_the_limit() {
        let entry = ModelEntry {
            limits: Limits {
                max_input_elements: Some(40),
                max_dims: [("batch".to_string(), 8)].into(),
            },
            ..crate::test_models::entry(
                vec![TensorSpec {
                    name: "x".into(),
                    dtype: DType::F32,
                    shape: vec![Dim::Symbol("batch".into()), Dim::Fixed(4)],
                }],
                Vec::new(),
            )
        };
        let rows =
            |n: usize| -> TVec<TValue> { tvec![Tensor::zero::<f32>(&[n, 4]).unwrap().into()] };
        assert!(check_limits(&entry, &rows(8), |_| "x".into()).is_ok());
        let e = check_limits(&entry, &rows(9), |_| "inputs.x".into()).unwrap_err();
        assert_eq!(e.status(), 413);
        assert!(
            e.to_string().contains("batch = 9") && e.to_string().contains("limits.max_dims.batch"),
            "{e}"
        );
        let entry = ModelEntry {
            limits: Limits {
                max_input_elements: Some(20),
                ..Limits::default()
            },
            ..entry
        };
        let e = check_limits(&entry, &rows(8), |_| "x".into()).unwrap_err();
        assert!(
            e.to_string().contains("32 input values")
                && e.to_string().contains("(20, limits.max_input_elements)"),
            "{e}"
        );
    }

    #[test]
    fn the_measured_cost_caps_a_request_by_the_memory_free() {
        let entry = |memory| ModelEntry {
            memory,
            ..crate::test_models::entry(
                vec![TensorSpec {
                    name: "x".into(),
                    dtype: DType::F32,
                    shape: vec![Dim::Symbol("batch".into()), Dim::Fixed(1024)],
                }],
                Vec::new(),
            )
        };
        let cost = model_lock::MemoryCost {
            fixed_bytes: 1 << 20,
            bytes_per_input_element: 1000,
        };
        let rows =
            |n: usize| -> TVec<TValue> { tvec![Tensor::zero::<f32>(&[n, 1024]).unwrap().into()] };
        // No cost measured, or no memory known: no cap.
        assert!(check_cost(&entry(None), &rows(4096), Some(1)).is_ok());
        assert!(check_cost(&entry(Some(cost)), &rows(4096), None).is_ok());
        let used = unreclaimable_bytes().unwrap();
        let limit = used + RESERVE_BYTES + (64 << 20);
        // 16 rows: 16 MB at 1,000 bytes a value; 1,024 rows: a GB.
        assert!(check_cost(&entry(Some(cost)), &rows(16), Some(limit)).is_ok());
        let e = check_cost(&entry(Some(cost)), &rows(1024), Some(limit)).unwrap_err();
        assert_eq!(e.status(), 413);
        let said = e.to_string();
        assert!(
            said.contains("sends 1048576 input values")
                && said.contains("1000 bytes of memory per input value")
                && said.contains("raise the function's memory"),
            "{said}"
        );
    }

    #[test]
    fn file_backed_pages_do_not_count_as_used() {
        // A mapped file's pages, read in: resident, but the kernel can drop them.
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &vec![7u8; 64 << 20]).unwrap();
        let before = unreclaimable_bytes().unwrap();
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                64 << 20,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                std::os::fd::AsRawFd::as_raw_fd(&file),
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        let bytes = unsafe { std::slice::from_raw_parts(map as *const u8, 64 << 20) };
        let sum: u64 = bytes.iter().step_by(4096).map(|b| *b as u64).sum();
        assert_eq!(sum, 7 * 16384);
        let after = unreclaimable_bytes().unwrap();
        unsafe { libc::munmap(map, 64 << 20) };
        assert!(
            after < before + (16 << 20),
            "64 MB of file pages counted: {before} → {after}"
        );
    }

    #[test]
    fn memory_left_decides() {
        assert!(
            check_memory(u64::MAX, None, "m").is_ok(),
            "no setting, no check"
        );
        let used = unreclaimable_bytes().unwrap();
        let limit = used + RESERVE_BYTES + (100 << 20);
        assert!(check_memory(50 << 20, Some(limit), "m").is_ok());
        assert!(
            check_memory(1000, Some(1), "m").is_ok(),
            "within the reserve"
        );
        let e = check_memory(200 << 20, Some(limit), "m").unwrap_err();
        assert_eq!(e.status(), 413);
        assert!(e.to_string().contains("needs about 200 MB"), "{e}");
    }
}
