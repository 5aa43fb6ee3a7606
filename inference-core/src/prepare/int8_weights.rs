//! `quantize = "int8"` at pack time: large float weights feeding MatMul/Gemm (per output
//! column) and Gather tables (per row) become symmetric per-channel int8 plus f32 scales,
//! restored by a standard `DequantizeLinear` node: a valid ONNX file ~4x smaller. The
//! function restores them at load (`crate::int8::dequantize_constants`).

use std::collections::HashMap;

use tract_onnx::pb::{self, tensor_proto::DataType, ModelProto, NodeProto, TensorProto};

use crate::int8::{attr_int, floats};

/// Why a model cannot be quantized.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error("int8 quantization needs ONNX opset 13 or later (per-axis DequantizeLinear); this model uses opset {0}: use quantize = \"none\"")]
    Opset(i64),
    #[error("the model has no graph")]
    NoGraph,
}

/// What [`quantize`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuantReport {
    pub tensors: usize,
    pub elements: usize,
}

fn f32_tensor(name: String, dims: Vec<i64>, data: &[f32]) -> TensorProto {
    TensorProto {
        name,
        dims,
        data_type: DataType::Float as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn channel_axis(uses: &[(&NodeProto, usize)], rank: usize) -> Option<usize> {
    let mut axis = None;
    for (node, input) in uses {
        let a = match (node.op_type.as_str(), input) {
            // B of MatMul [K, N]: one scale per output column.
            ("MatMul", 1) if rank == 2 => 1,
            // B of Gemm: [K, N], or [N, K] with transB.
            ("Gemm", 1) if rank == 2 => {
                if attr_int(node, "transB") == Some(1) {
                    0
                } else {
                    1
                }
            }
            // An embedding table: one scale per row (token).
            ("Gather", 0) if rank == 2 && attr_int(node, "axis").unwrap_or(0) == 0 => 0,
            _ => return None,
        };
        if axis.is_some_and(|x| x != a) {
            return None;
        }
        axis = Some(a);
    }
    axis
}

fn opset(model: &ModelProto) -> i64 {
    model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .unwrap_or(0)
}

/// Rewrites the large float weights of `model` as int8 + per-channel scales behind
/// `DequantizeLinear`. Needs opset ≥ 13 (per-axis DequantizeLinear).
pub fn quantize(model: &mut ModelProto, min_elements: usize) -> Result<QuantReport, QuantizeError> {
    if opset(model) < 13 {
        return Err(QuantizeError::Opset(opset(model)));
    }
    let graph = model.graph.as_mut().ok_or(QuantizeError::NoGraph)?;
    let mut uses: HashMap<String, Vec<(NodeProto, usize)>> = HashMap::new();
    for node in &graph.node {
        for (i, input) in node.input.iter().enumerate() {
            uses.entry(input.clone())
                .or_default()
                .push((node.clone(), i));
        }
    }
    let graph_outputs: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    let mut report = QuantReport::default();
    let mut kept = Vec::with_capacity(graph.initializer.len());
    let mut new_nodes = Vec::new();
    for init in std::mem::take(&mut graph.initializer) {
        let numel: i64 = init.dims.iter().product();
        let plan = (|| {
            if (numel as usize) < min_elements || graph_outputs.contains(&init.name) {
                return None;
            }
            let u = uses.get(&init.name)?;
            let refs: Vec<(&NodeProto, usize)> = u.iter().map(|(n, i)| (n, *i)).collect();
            let axis = channel_axis(&refs, init.dims.len())?;
            Some((axis, floats(&init)?))
        })();
        let Some((axis, data)) = plan else {
            kept.push(init);
            continue;
        };
        let (rows, cols) = (init.dims[0] as usize, init.dims[1] as usize);
        let channels = if axis == 0 { rows } else { cols };
        let mut max = vec![0f32; channels];
        for (ix, v) in data.iter().enumerate() {
            let c = if axis == 0 { ix / cols } else { ix % cols };
            max[c] = max[c].max(v.abs());
        }
        let scales: Vec<f32> = max
            .iter()
            .map(|m| {
                if *m > 0.0 && m.is_finite() {
                    m / 127.0
                } else {
                    1.0
                }
            })
            .collect();
        let q: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(ix, v)| {
                let c = if axis == 0 { ix / cols } else { ix % cols };
                ((v / scales[c]).round().clamp(-127.0, 127.0) as i8) as u8
            })
            .collect();
        let qname = format!("{}__int8", init.name);
        let sname = format!("{}__scale", init.name);
        kept.push(TensorProto {
            name: qname.clone(),
            dims: init.dims.clone(),
            data_type: DataType::Int8 as i32,
            raw_data: q,
            ..Default::default()
        });
        kept.push(f32_tensor(sname.clone(), vec![channels as i64], &scales));
        new_nodes.push(NodeProto {
            name: format!("{}__dequantize", init.name),
            op_type: "DequantizeLinear".into(),
            input: vec![qname, sname],
            output: vec![init.name.clone()],
            attribute: vec![pb::AttributeProto {
                name: "axis".into(),
                r#type: pb::attribute_proto::AttributeType::Int as i32,
                i: axis as i64,
                ..Default::default()
            }],
            ..Default::default()
        });
        report.tensors += 1;
        report.elements += data.len();
    }
    graph.initializer = kept;
    // Dequantize nodes produce what used to be initializers: they go first (topological order).
    new_nodes.append(&mut graph.node);
    graph.node = new_nodes;
    Ok(report)
}
