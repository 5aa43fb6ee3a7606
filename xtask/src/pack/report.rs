//! What `pack-models` prints: per model how each dim is served and why, and the table.

use inference_core::prepare::{self};
use model_lock::{ModelEntry, Plans};

use super::Packed;

/// Says, per model, how each input dim is served and why.
pub(super) fn report_shapes(
    entry: &ModelEntry,
    typing: &prepare::Typing,
    memory: Option<model_lock::MemoryCost>,
) {
    let batch = entry
        .plans
        .rows()
        .then(|| entry.inputs.first().and_then(|s| s.shape.first()))
        .flatten()
        .map(|d| d.to_string());
    let per_request = matches!(entry.plans, Plans::PerShape { .. });
    let bucketed = match &entry.plans {
        Plans::Buckets { .. } => inference_core::prepare::bucketed_symbol(entry),
        _ => None,
    };
    let mut lines = Vec::new();
    for input in &entry.inputs {
        let dims: Vec<String> = input
            .shape
            .iter()
            .enumerate()
            .map(|(axis, d)| match d {
                model_lock::Dim::Fixed(n) => format!("{n} fixed"),
                model_lock::Dim::Symbol(name) if axis == 0 && batch.as_deref() == Some(name) => {
                    format!("{name}: rows run one by one")
                }
                model_lock::Dim::Symbol(name) if bucketed.as_deref() == Some(name) => {
                    format!("{name}: padded to a bucket")
                }
                model_lock::Dim::Symbol(name) if per_request => {
                    format!("{name}: a plan per request value")
                }
                model_lock::Dim::Symbol(name) => format!("{name}: symbolic"),
            })
            .collect();
        lines.push(format!("  {} [{}]", input.name, dims.join(", ")));
    }
    for name in entry.constants.keys() {
        lines.push(format!(
            "  {name}: fixed to {} (packed as a constant)",
            entry.constants[name]
        ));
    }
    let cost = match memory {
        Some(m) => format!(
            "; a request needs about {} bytes per input value + {} MB",
            m.bytes_per_input_element,
            m.fixed_bytes.div_ceil(1 << 20)
        ),
        None => String::new(),
    };
    eprintln!(
        "{}: {}; plans {}{cost}\n{}",
        entry.name,
        typing.describe(),
        entry.plans,
        lines.join("\n")
    );
}

pub(super) fn print_table(packed: &[Packed]) {
    println!(
        "{:<24} {:>12} {:>12} {:>7} {:>9} {:>10} {:>9}  plans",
        "model", "source", "packed", "ratio", "cosine", "max abs", "load ms"
    );
    for p in packed {
        let (cos, abs) = match p.drift {
            Some(d) => (format!("{:.5}", d.cosine), format!("{:.5}", d.max_abs)),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:<24} {:>12} {:>12} {:>7.2} {:>9} {:>10} {:>9.1}  {}",
            p.entry.name,
            p.source_size,
            p.bytes.len(),
            p.bytes.len() as f64 / p.source_size.max(1) as f64,
            cos,
            abs,
            p.load_ms,
            p.entry.plans
        );
    }
}
