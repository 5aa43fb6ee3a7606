//! Text in, embeddings out, through the real text-fixture `bootstrap` (MiniLM packed as
//! int8 with its tokenizer, built by `cargo xtask test`), compared with the reference that
//! Python `tokenizers` + onnxruntime computed on the fp32 model (lambda-fn/tests/text/).

use base64::Engine as _;
use inference_core::compare::cosine;
use runtime_emulator::{events, Function, FunctionConfig};
use serde_json::{json, Value};

fn reference() -> Value {
    let text = std::fs::read_to_string(test_support::fixture_path("TEXT_REFERENCE")).unwrap();
    serde_json::from_str(&text).unwrap()
}

async fn start() -> Function {
    Function::start(FunctionConfig::new(test_support::fixture_path(
        "TEXT_BOOTSTRAP",
    )))
    .await
    .expect("bootstrap starts")
}

fn vectors(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .expect("an array of vectors")
        .iter()
        .map(|e| {
            e.as_array()
                .expect("a vector")
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Documents by decreasing similarity to the query.
fn ranking(query: &[f64], docs: &[Vec<f64>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..docs.len()).collect();
    order.sort_by(|&a, &b| dot(query, &docs[b]).total_cmp(&dot(query, &docs[a])));
    order
}

/// Nearest neighbours: with `model`'s embeddings every query ranks the documents as the
/// reference does.
async fn ranks_as_the_reference(f: &Function, model: &str, reference: &Value) {
    let embed = |key: &str| {
        let text = strings(&reference[key]);
        async move {
            let resp =
                test_support::function::invoke(f, &json!({"model": model, "text": text})).await;
            vectors(&resp["embeddings"])
        }
    };
    let (q, d) = (embed("queries").await, embed("documents").await);
    let want_q = vectors(&reference["query_embeddings"]);
    let want_d = vectors(&reference["document_embeddings"]);
    for (i, query) in strings(&reference["queries"]).iter().enumerate() {
        assert_eq!(
            ranking(&q[i], &d),
            ranking(&want_q[i], &want_d),
            "{model}: ranking for {query:?}"
        );
    }
}

#[tokio::test]
async fn embeddings_match_the_python_reference() {
    test_support::require_fixtures!("TEXT_REFERENCE", "TEXT_BOOTSTRAP");
    let f = start().await;
    let reference = reference();
    let sentences = strings(&reference["sentences"]);
    let want = vectors(&reference["embeddings"]);

    // One text per request.
    let mut singles = Vec::new();
    for (sentence, want) in sentences.iter().zip(&want) {
        let resp =
            test_support::function::invoke(&f, &json!({"model": "minilm", "text": sentence})).await;
        assert_eq!(resp["model"], "minilm", "{resp}");
        assert_eq!(resp["source"], "embedded");
        assert_eq!(resp["truncated"], json!([false]));
        let mut got = vectors(&resp["embeddings"]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].len(), 384);
        let c = cosine(&got[0], want);
        assert!(
            c >= 0.99,
            "{sentence:?}: cosine {c} with the fp32 reference"
        );
        assert!(
            (dot(&got[0], &got[0]).sqrt() - 1.0).abs() < 1e-4,
            "normalised"
        );
        singles.push(got.remove(0));
    }

    // The same texts as one padded batch: one run, the same embeddings.
    let resp = test_support::function::invoke(&f, &json!({"text": sentences})).await;
    let batch = vectors(&resp["embeddings"]);
    assert_eq!(batch.len(), sentences.len());
    for (i, (b, s)) in batch.iter().zip(&singles).enumerate() {
        let c = cosine(b, s);
        assert!(c > 0.9999, "text {i}: batch vs single cosine {c}");
    }
    let tokens = resp["tokens"].as_array().unwrap();
    assert_eq!(tokens[0], 9, "[CLS] the cat sits on the mat . [SEP]");

    ranks_as_the_reference(&f, "minilm", &reference).await;

    // The fixture packs MiniLM with bucket plans: every batch above was padded up to a
    // bucket length (the answers stayed the reference's), each length's plan built once.
    let built: Vec<u64> = test_support::function::log_lines(&f, "plan built")
        .iter()
        .map(|l| {
            let shape = l["shape"].as_str().unwrap();
            shape.strip_prefix("sequence ").unwrap().parse().unwrap()
        })
        .collect();
    let mut once = built.clone();
    once.sort();
    once.dedup();
    assert!(
        !built.is_empty() && once.len() == built.len(),
        "one plan per length: {built:?}"
    );
    assert!(
        built.iter().all(|l| [16, 32, 64, 128].contains(l)),
        "bucket lengths only: {built:?}"
    );
}

/// `quantize = "int8-dynamic"`: the same MiniLM with its matrix products on tract's integer
/// kernels still answers within cosine 0.99 of the fp32 reference and ranks as it does.
#[tokio::test]
async fn int8_dynamic_embeddings_match_the_python_reference() {
    test_support::require_fixtures!("TEXT_REFERENCE", "TEXT_BOOTSTRAP");
    let f = start().await;
    let model = "minilm-int8-dynamic";
    let reference = reference();
    let sentences = strings(&reference["sentences"]);
    let want = vectors(&reference["embeddings"]);
    let resp =
        test_support::function::invoke(&f, &json!({"model": model, "text": sentences})).await;
    assert_eq!(resp["model"], model, "{resp}");
    let batch = vectors(&resp["embeddings"]);
    assert_eq!(batch.len(), sentences.len());
    for ((sentence, got), want) in sentences.iter().zip(&batch).zip(&want) {
        let c = cosine(got, want);
        assert!(
            c >= 0.99,
            "{sentence:?}: cosine {c} with the fp32 reference"
        );
        // Alone, its rows quantize with the same scales: the batch's answer.
        let single =
            test_support::function::invoke(&f, &json!({"model": model, "text": sentence})).await;
        let single = vectors(&single["embeddings"]);
        let c = cosine(&single[0], got);
        assert!(c > 0.9999, "{sentence:?}: batch vs single cosine {c}");
    }
    ranks_as_the_reference(&f, model, &reference).await;
    // The products ran on tract's integer kernels (`*_mmm_i32_*`), not the f32 ones alone.
    let loaded = test_support::function::log_lines(&f, "model loaded");
    let line = loaded
        .iter()
        .find(|l| l["model"] == model)
        .expect("an init line for the int8-dynamic model");
    let kernels = line["kernels"].as_str().unwrap();
    assert!(kernels.contains("_mmm_i32_"), "kernels: {line}");
}

#[tokio::test]
async fn text_edge_cases_get_clear_answers() {
    test_support::require_fixtures!("TEXT_REFERENCE", "TEXT_BOOTSTRAP");
    let f = start().await;

    // Over-long: cut to max_length and said so.
    let long = "lambda ".repeat(400);
    let resp = test_support::function::invoke(&f, &json!({"text": [long, "short"]})).await;
    assert_eq!(resp["truncated"], json!([true, false]), "{resp}");
    assert_eq!(resp["tokens"], json!([128, 3]));

    let cases = [
        (json!({"text": ""}), "text 0 is empty"),
        (json!({"text": ["fine", "   "]}), "text 1 is empty"),
        (
            json!({"text": vec!["a"; 17]}),
            "17 texts, more than this model takes in one request (16",
        ),
        (json!({"text": 7}), "string or an array of strings"),
        (json!({"text": []}), "the list is empty"),
        (json!({"text": "x", "features": [1]}), "not several"),
    ];
    for (request, needle) in &cases {
        let resp = test_support::function::invoke(&f, request).await;
        assert_eq!(resp["status"], 400, "{request}: {resp}");
        let msg = resp["error"].as_str().unwrap();
        assert!(msg.contains(needle), "{request}: {msg:?} lacks {needle:?}");
    }

    // Through API Gateway: text works, and a base64 body that is not UTF-8 is a 400.
    let body = serde_json::to_vec(&json!({"text": "hello world"})).unwrap();
    let event = events::apigw_v2("POST", "/", &[], &body, true);
    let resp = test_support::function::invoke(&f, &event).await;
    assert_eq!(resp["statusCode"], 200, "{resp}");
    let answer: Value = serde_json::from_str(resp["body"].as_str().unwrap()).unwrap();
    assert_eq!(vectors(&answer["embeddings"])[0].len(), 384);

    let mut event = events::apigw_v2("POST", "/", &[], b"x", true);
    event["body"] =
        json!(base64::engine::general_purpose::STANDARD.encode(b"{\"text\": \"caf\xe9\"}"));
    let resp = test_support::function::invoke(&f, &event).await;
    assert_eq!(resp["statusCode"], 400, "{resp}");
    assert!(
        resp["body"].as_str().unwrap().contains("not valid UTF-8"),
        "{resp}"
    );

    // Still healthy.
    let resp = test_support::function::invoke(&f, &json!({"text": "still here"})).await;
    assert_eq!(vectors(&resp["embeddings"]).len(), 1);
}
