//! Text pairs through the real text-fixture `bootstrap`: question answering (windows, spans,
//! character offsets, "no answer"), cross-encoder rerank and pair classification, each
//! compared with the reference Python computed — Hugging Face `tokenizers` + onnxruntime +
//! the Hugging Face question-answering pipeline's span choice (lambda-fn/tests/text/pairs.py) —
//! on the same BERT-shaped models with the real MiniLM tokenizer. Then the requests written
//! to break them.

use serde_json::{json, Value};
use test_support::hostile::{self, Case};

/// Scores are probabilities computed in f32 by tract and onnxruntime alike.
const SCORE_TOLERANCE: f64 = 1e-4;

fn reference() -> Value {
    let text = std::fs::read_to_string(test_support::fixture_path("TEXT_PAIRS_REFERENCE")).unwrap();
    serde_json::from_str(&text).unwrap()
}

async fn start() -> runtime_emulator::Function {
    test_support::function::start(
        &test_support::fixture_path("TEXT_BOOTSTRAP"),
        &[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")],
    )
    .await
}

fn close(a: &Value, b: &Value) -> bool {
    (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() <= SCORE_TOLERANCE
}

/// One answer as ours and the reference's agree: the same span of the same text, the score
/// within tolerance.
fn assert_same_answer(ours: &Value, want: &Value, what: &str) {
    for key in ["answer", "start", "end"] {
        assert_eq!(
            ours[key], want[key],
            "{what}: {key}: ours {ours}, reference {want}"
        );
    }
    assert!(
        close(&ours["score"], &want["score"]),
        "{what}: score: ours {ours}, reference {want}"
    );
}

/// The request a reference case stands for: one question, `top_k` only when it is not 1
/// (so the single-answer shape is tested too).
fn qa_request(case: &Value) -> Value {
    let model = match case["handle_impossible_answer"].as_bool().unwrap() {
        true => "qa-impossible",
        false => "qa",
    };
    let mut request = json!({
        "model": model,
        "question": case["question"],
        "context": case["context"],
    });
    if case["top_k"] != 1 {
        request["top_k"] = case["top_k"].clone();
    }
    request
}

#[tokio::test]
async fn question_answering_picks_the_spans_the_python_pipeline_picks() {
    test_support::require_fixtures!("TEXT_PAIRS_REFERENCE", "TEXT_BOOTSTRAP");
    let reference = reference();
    let f = start().await;
    let cases = reference["qa"]["cases"].as_array().unwrap();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let resp = test_support::function::invoke(&f, &qa_request(case)).await;
        assert!(resp.get("error").is_none(), "{name}: {resp}");
        let want = case["answers"].as_array().unwrap();
        if case["top_k"] == 1 {
            // One answer: its fields at the top level.
            assert_same_answer(&resp, &want[0], name);
        } else {
            let ours = resp["answers"].as_array().expect("a list of answers");
            assert_eq!(ours.len(), want.len(), "{name}: {resp}");
            for (i, (o, w)) in ours.iter().zip(want).enumerate() {
                assert_same_answer(o, w, &format!("{name}, answer {i}"));
            }
        }
    }

    // The cases are the ones the issue names, as the reference answered them.
    let case = |name: &str| cases.iter().find(|c| c["name"] == name).unwrap();
    assert_eq!(case("car")["answers"][0]["answer"], "1886");
    assert!(case("car")["windows"].as_u64().unwrap() >= 2);
    let long = case("long");
    assert!(long["windows"].as_u64().unwrap() >= 2, "{long}");
    assert_eq!(
        long["answers"][0]["window"], 1,
        "the answer is in the second window"
    );
    assert_eq!(case("no answer")["answers"][0]["answer"], "");
    // Offsets count characters (code points): the answer is the context's characters
    // start..end, in a context of accents, CJK and emoji.
    let unicode = case("unicode");
    let context: Vec<char> = unicode["context"].as_str().unwrap().chars().collect();
    let answer = &unicode["answers"][0];
    let (s, e) = (
        answer["start"].as_u64().unwrap() as usize,
        answer["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(
        context[s..e].iter().collect::<String>(),
        answer["answer"].as_str().unwrap()
    );
    assert!(
        context[..s].iter().any(|c| c.len_utf8() == 4),
        "an emoji before the answer"
    );
}

#[tokio::test]
async fn a_question_batch_answers_as_its_questions_one_by_one() {
    test_support::require_fixtures!("TEXT_PAIRS_REFERENCE", "TEXT_BOOTSTRAP");
    let reference = reference();
    let f = start().await;
    let cases: Vec<&Value> = reference["qa"]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["handle_impossible_answer"] == false)
        .collect();
    let questions: Vec<&Value> = cases.iter().map(|c| &c["question"]).collect();
    let contexts: Vec<&Value> = cases.iter().map(|c| &c["context"]).collect();
    for top_k in [None, Some(3)] {
        let mut batch = json!({"model": "qa", "question": questions, "context": contexts});
        if let Some(k) = top_k {
            batch["top_k"] = json!(k);
        }
        let resp = test_support::function::invoke(&f, &batch).await;
        let answers = resp["answers"]
            .as_array()
            .expect("a list, one per question");
        assert_eq!(answers.len(), cases.len(), "{resp}");
        for (case, answer) in cases.iter().zip(answers) {
            let mut single = json!({
                "model": "qa",
                "question": case["question"],
                "context": case["context"],
            });
            if let Some(k) = top_k {
                single["top_k"] = json!(k);
            }
            let one = test_support::function::invoke(&f, &single).await;
            // Padded to the batch's longest window, the sums run in another order: the
            // same spans, scores within rounding.
            let what = format!("{}: top_k {top_k:?}", case["name"]);
            match top_k {
                Some(_) => {
                    let (ours, alone) = (
                        answer.as_array().unwrap(),
                        one["answers"].as_array().unwrap(),
                    );
                    assert_eq!(ours.len(), alone.len(), "{what}");
                    for (o, a) in ours.iter().zip(alone) {
                        assert_same_answer(o, a, &what);
                    }
                }
                None => assert_same_answer(answer, &one, &what),
            }
        }
    }
}

#[tokio::test]
async fn rerank_orders_the_documents_as_the_reference() {
    test_support::require_fixtures!("TEXT_PAIRS_REFERENCE", "TEXT_BOOTSTRAP");
    let reference = reference();
    let want = &reference["rerank"];
    let f = start().await;
    let request =
        json!({"model": "rerank", "query": want["query"], "documents": want["documents"]});
    let resp = test_support::function::invoke(&f, &request).await;
    assert_eq!(resp["ranking"], want["ranking"], "{resp}");
    let scores = resp["scores"].as_array().unwrap();
    assert_eq!(scores.len(), want["documents"].as_array().unwrap().len());
    for (ours, theirs) in scores.iter().zip(want["scores"].as_array().unwrap()) {
        assert!(close(ours, theirs), "ours {resp}, reference {want}");
    }

    // top_k cuts the ranking, never the scores.
    let mut top = request.clone();
    top["top_k"] = json!(2);
    let resp_top = test_support::function::invoke(&f, &top).await;
    assert_eq!(
        resp_top["ranking"],
        json!(want["ranking"].as_array().unwrap()[..2])
    );
    assert_eq!(resp_top["scores"], resp["scores"]);

    // The same pairs sent as pairs, and each document alone, score the same.
    let query = want["query"].as_str().unwrap();
    let pairs: Vec<Value> = want["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| json!([query, d]))
        .collect();
    let as_pairs =
        test_support::function::invoke(&f, &json!({"model": "rerank", "text": pairs})).await;
    assert_eq!(as_pairs["scores"], resp["scores"]);
    assert_eq!(as_pairs["ranking"], resp["ranking"]);
    for (i, d) in want["documents"].as_array().unwrap().iter().enumerate() {
        let alone = test_support::function::invoke(
            &f,
            &json!({"model": "rerank", "query": query, "documents": [d]}),
        )
        .await;
        assert!(
            close(&alone["scores"][0], &resp["scores"][i]),
            "{alone} vs {resp}"
        );
    }
}

#[tokio::test]
async fn pairs_are_classified_as_the_reference() {
    test_support::require_fixtures!("TEXT_PAIRS_REFERENCE", "TEXT_BOOTSTRAP");
    let reference = reference();
    let want = &reference["pairs"];
    let f = start().await;
    let resp = test_support::function::invoke(
        &f,
        &json!({"model": "pair-classifier", "text": want["pairs"]}),
    )
    .await;
    assert_eq!(resp["labels"], want["predicted"], "{resp}");
    for (ours, theirs) in resp["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .zip(want["probabilities"].as_array().unwrap())
    {
        for (o, t) in ours
            .as_array()
            .unwrap()
            .iter()
            .zip(theirs.as_array().unwrap())
        {
            assert!(close(o, t), "ours {ours}, reference {theirs}");
        }
    }
    // A pair alone answers as it did in the batch.
    let alone = test_support::function::invoke(
        &f,
        &json!({"model": "pair-classifier", "text": [want["pairs"][1]]}),
    )
    .await;
    assert_eq!(alone["labels"][0], resp["labels"][1]);
    assert_eq!(alone["probabilities"][0], resp["probabilities"][1]);
}

#[tokio::test]
async fn hostile_pair_and_question_requests_get_their_documented_answers() {
    test_support::require_fixtures!("TEXT_BOOTSTRAP");
    let f = start().await;
    let car = "The year 1886 is regarded as the birth year of the modern car.";
    let words = |n: usize| vec!["word"; n].join(" ");
    let cases = vec![
        Case::json(
            "an empty question",
            &json!({"model": "qa", "question": " ", "context": car}),
            400,
            "field \"question\" is empty",
        ),
        Case::json(
            "an empty context in a batch",
            &json!({"model": "qa", "question": ["a?", "b?"], "context": [car, ""]}),
            400,
            "context 1 is empty",
        ),
        Case::json(
            "a context of zero-width spaces",
            &json!({"model": "qa", "question": "when?", "context": "\u{200b}\u{200b}"}),
            400,
            "no tokens",
        ),
        Case::json(
            "more questions than contexts",
            &json!({"model": "qa", "question": ["a?", "b?"], "context": [car]}),
            400,
            "2 questions and 1 contexts",
        ),
        Case::json(
            "a question list with one context string",
            &json!({"model": "qa", "question": ["a?"], "context": car}),
            400,
            "both be strings",
        ),
        Case::json(
            "a question of 60 words leaves no room beside the stride",
            &json!({"model": "qa", "question": words(60), "context": car}),
            400,
            "a question may have at most",
        ),
        Case::json(
            "a question of 300 words",
            &json!({"model": "qa", "question": words(300), "context": car}),
            400,
            "more than 64 tokens",
        ),
        Case::json(
            "a context needing more than 16 windows",
            &json!({"model": "qa", "question": "when?", "context": words(700)}),
            413,
            "windows",
        ),
        Case::json(
            "contexts past what max_batch windows hold",
            &json!({"model": "qa", "question": ["a?", "b?"], "context": [words(3000), words(3000)]}),
            413,
            "characters in all",
        ),
        Case::json(
            "17 questions",
            &json!({"model": "qa", "question": vec!["a?"; 17], "context": vec![car; 17]}),
            400,
            "17 questions",
        ),
        Case::json(
            "no questions",
            &json!({"model": "qa", "question": [], "context": []}),
            400,
            "the list is empty",
        ),
        Case::json(
            "top_k 0",
            &json!({"model": "qa", "question": "when?", "context": car, "top_k": 0}),
            400,
            "\"top_k\"",
        ),
        Case::json(
            "top_k of a million",
            &json!({"model": "qa", "question": "when?", "context": car, "top_k": 1_000_000}),
            400,
            "\"top_k\"",
        ),
        Case::json(
            "top_k for an embedding model",
            &json!({"model": "minilm", "text": "a", "top_k": 2}),
            400,
            "\"top_k\" is for rerank",
        ),
        Case::json(
            "texts to a question-answering model",
            &json!({"model": "qa", "text": ["a"]}),
            400,
            "\"question\" and \"context\"",
        ),
        Case::json(
            "a question to a rerank model",
            &json!({"model": "rerank", "question": "a?", "context": car}),
            400,
            "\"query\" and \"documents\"",
        ),
        Case::json(
            "pairs to an embedding model",
            &json!({"model": "minilm", "text": [["a", "b"]]}),
            400,
            "not \"text\" as pairs",
        ),
        Case::json(
            "a pair of three",
            &json!({"model": "rerank", "text": [["a", "b", "c"]]}),
            400,
            "pair of strings",
        ),
        Case::json(
            "a query without documents",
            &json!({"model": "rerank", "query": "q"}),
            400,
            "needs \"documents\"",
        ),
        Case::json(
            "no documents",
            &json!({"model": "rerank", "query": "q", "documents": []}),
            400,
            "the list is empty",
        ),
        Case::json(
            "17 documents",
            &json!({"model": "rerank", "query": "q", "documents": vec!["d"; 17]}),
            400,
            "17 documents",
        ),
        Case::json(
            "an empty document",
            &json!({"model": "rerank", "query": "q", "documents": ["d", "\t"]}),
            400,
            "document 1 is empty",
        ),
        Case::json(
            "an empty query",
            &json!({"model": "rerank", "query": "", "documents": ["d"]}),
            400,
            "field \"query\" is empty",
        ),
        Case::json(
            "a document of 1 MB",
            &json!({"model": "rerank", "query": "q", "documents": ["x".repeat(1 << 20)]}),
            413,
            "characters",
        ),
        Case::json(
            "an over-long document is cut, not refused",
            &json!({"model": "rerank", "query": "q", "documents": [words(300)]}),
            200,
            "",
        ),
        Case::json(
            "only_second: a first text that fills max_length",
            &json!({"model": "pair-classifier", "text": [["short", "b"], [words(200), "b"]]}),
            400,
            "pair 1 cannot be tokenized",
        ),
        Case::json(
            "a pair whose second text is control characters",
            &json!({"model": "pair-classifier", "text": [["a", "\u{1}\u{2}"]]}),
            400,
            "pair 0 (its second text) has no tokens",
        ),
        Case::json(
            "a good question",
            &json!({"model": "qa", "question": "When was the car invented?", "context": car, "top_k": 2}),
            200,
            "",
        ),
    ];
    hostile::run(
        &f,
        &cases,
        &json!({"model": "rerank", "query": "q", "documents": ["a", "b"]}),
    )
    .await;
}
