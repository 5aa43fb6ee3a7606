//! Requests written to break a text model, through the real text-fixture `bootstrap` (MiniLM
//! with its tokenizer, max_length 128, max_batch 16): raw token ids past the vocabulary,
//! batches and sequences past the pipeline's limits, answers past Lambda's response limit,
//! texts too long to tokenize or empty once normalized. Each gets its documented status and
//! a JSON body, and a normal request after it is still answered.

use runtime_emulator::events;
use serde_json::{json, Value};
use test_support::hostile::{self, Case};

/// Raw inputs: `ids` for every row, the attention mask all ones.
fn raw(ids: Vec<Vec<Value>>) -> Value {
    let mask: Vec<Vec<u8>> = ids.iter().map(|r| vec![1; r.len()]).collect();
    json!({"inputs": {"input_ids": ids, "attention_mask": mask}})
}

/// `[CLS] the … [SEP]`, `len` tokens, `rows` times.
fn ids(rows: usize, len: usize) -> Vec<Vec<Value>> {
    let mut row = vec![json!(1996); len];
    row[0] = json!(101);
    row[len - 1] = json!(102);
    vec![row; rows]
}

fn with_id(id: Value) -> Value {
    let mut rows = ids(1, 8);
    rows[0][3] = id;
    raw(rows)
}

#[tokio::test]
async fn hostile_requests_to_a_text_model_get_their_documented_answers() {
    test_support::require_fixtures!("TEXT_BOOTSTRAP");
    let f = test_support::function::start(
        &test_support::fixture_path("TEXT_BOOTSTRAP"),
        &[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")],
    )
    .await;
    let mut long_words = "the cat sat on the mat ".repeat(50_000);
    long_words.push('.');
    let sixteen_by_128 = raw(ids(16, 128));
    let mut returned = sixteen_by_128.clone();
    returned["return"] = json!(["461"]);
    let mismatched =
        json!({"inputs": {"input_ids": ids(2, 8), "attention_mask": vec![vec![1; 8]]}});
    let headers = [("content-type".to_string(), "application/json".to_string())];
    let http_bad_id = events::apigw_v2(
        "POST",
        "/",
        &headers,
        &serde_json::to_vec(&with_id(json!(30522))).unwrap(),
        false,
    );
    let cases = vec![
        Case::json(
            "an id equal to the vocabulary size",
            &with_id(json!(30522)),
            400,
            "0..=30521",
        ),
        Case::json(
            "an id far past the vocabulary",
            &with_id(json!(1u64 << 40)),
            400,
            "out of range",
        ),
        Case::json(
            "2^57 + 2023",
            &with_id(json!((1i64 << 57) + 2023)),
            400,
            "out of range",
        ),
        Case::json(
            "a negative id past the table",
            &with_id(json!(-40000)),
            400,
            "out of range",
        ),
        Case::json(
            "a negative id within the table counts from the end",
            &with_id(json!(-1)),
            200,
            "",
        ),
        Case::json(
            "HTTP: an id past the vocabulary",
            &http_bad_id,
            400,
            "out of range",
        ),
        Case::json(
            "an id as a float",
            &with_id(json!(1.5)),
            400,
            "expected an integer",
        ),
        Case::json(
            "an id as a string",
            &with_id(json!("5")),
            400,
            "expected an integer",
        ),
        Case::json(
            "an id as NaN",
            &with_id(json!("NaN")),
            400,
            "not valid for an integer",
        ),
        Case::json(
            "a 600-token sequence",
            &raw(ids(1, 600)),
            400,
            "max_length 128",
        ),
        Case::json("a raw batch of 100", &raw(ids(100, 8)), 413, "max_batch"),
        Case::json(
            "16 × 128 raw ids answer over 6 MB",
            &sixteen_by_128,
            413,
            "response limit",
        ),
        Case::json(
            "the same, asking for the pooled output only",
            &returned,
            200,
            "",
        ),
        Case::json(
            "a missing attention mask",
            &json!({"inputs": {"input_ids": ids(1, 8)}}),
            400,
            "missing input",
        ),
        Case::json(
            "ragged ids",
            &json!({"inputs": {"input_ids": [[101, 102], [101]], "attention_mask": [[1, 1], [1]]}}),
            400,
            "ragged",
        ),
        Case::json(
            "inputs that disagree on the batch",
            &mismatched,
            400,
            "another input gave",
        ),
        Case::json(
            "5 MB of one character",
            &json!({"text": "!".repeat(5_000_000)}),
            413,
            "characters",
        ),
        Case::json(
            "a long document",
            &json!({"text": long_words}),
            413,
            "characters",
        ),
        Case::json(
            "5,000 emoji",
            &json!({"text": "😀".repeat(5000)}),
            413,
            "characters",
        ),
        Case::json("a NUL", &json!({"text": "\u{0}"}), 400, "no tokens"),
        Case::json(
            "a zero-width space",
            &json!({"text": "\u{200b}"}),
            400,
            "no tokens",
        ),
        Case::json(
            "control characters only",
            &json!({"text": ["ok", "\u{1}\u{2}\u{3}"]}),
            400,
            "text 1",
        ),
        Case::json("an empty text", &json!({"text": ""}), 400, "empty"),
        Case::json("spaces only", &json!({"text": "   \n\t"}), 400, "empty"),
        Case::json(
            "17 texts",
            &json!({"text": vec!["a sentence"; 17]}),
            400,
            "max_batch",
        ),
        Case::json("no texts", &json!({"text": []}), 400, "the list is empty"),
        Case::json(
            "a number among texts",
            &json!({"text": ["a", 1]}),
            400,
            "must be a string",
        ),
        Case::json(
            "text as an object",
            &json!({"text": {"a": 1}}),
            400,
            "string or an array of strings",
        ),
        Case::json(
            "text as null",
            &json!({"text": null}),
            400,
            "must be a string or an array",
        ),
        Case::json(
            "text with return",
            &json!({"text": "a", "return": ["461"]}),
            400,
            "\"return\"",
        ),
        Case::raw(
            "a lone surrogate in text",
            "{\"text\": \"\\udc00\"}",
            400,
            "malformed JSON",
        ),
        Case::json(
            "a good batch",
            &json!({"text": ["how to bake bread", "the cat sat on the mat"]}),
            200,
            "",
        ),
    ];
    assert!(cases.len() >= 30, "{} cases", cases.len());
    hostile::run(&f, &cases, &json!({"text": ["a normal sentence"]})).await;
    let peak = f.peak_rss_kib().await.expect("the function is running");
    eprintln!("peak RSS over the suite: {} MiB", peak / 1024);
    assert!(peak < 768 * 1024, "peak RSS {peak} KiB");
}

/// With little memory to spare, a request whose working memory does not fit what the
/// function has left of its memory setting gets a 413 before it runs, a small request is
/// still answered, and the function is never killed for its memory. What it has left is
/// its setting less the memory the kernel cannot reclaim: the embedded models' file pages
/// (most of this fixture's resident memory) do not count.
#[tokio::test]
async fn a_request_too_big_for_the_memory_setting_is_refused_before_it_runs() {
    test_support::require_fixtures!("TEXT_BOOTSTRAP");
    let bootstrap = test_support::fixture_path("TEXT_BOOTSTRAP");
    let small = raw(ids(1, 8));
    // What the function holds that cannot be reclaimed, loaded and having answered.
    let (baseline_mib, rss_mib) = {
        let f = test_support::function::start(
            &bootstrap,
            &[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")],
        )
        .await;
        let answer = test_support::function::invoke(&f, &small).await;
        assert!(answer.get("error").is_none(), "{answer}");
        let anon = f
            .resident_anon_kib()
            .await
            .expect("the function is running");
        let rss = f.peak_rss_kib().await.expect("the function is running");
        (anon / 1024, rss / 1024)
    };
    let memory_mib = baseline_mib + 48;
    let f = test_support::function::start(
        &bootstrap,
        &[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mib.to_string())],
    )
    .await;
    let long = "the cat sat on the mat and looked at the dog ".repeat(20);
    let cases = vec![
        Case::json(
            "16 × 128 raw ids, every output",
            &raw(ids(16, 128)),
            413,
            "of working memory",
        ),
        Case::json(
            "16 texts of 128 tokens",
            &json!({ "text": vec![long; 16] }),
            413,
            "raise the function's memory",
        ),
        Case::json("one short row", &small, 200, ""),
    ];
    // Each case is followed by a normal request, answered by the same process: none was
    // killed for its memory.
    hostile::run(&f, &cases, &small).await;
    let anon = f
        .resident_anon_kib()
        .await
        .expect("the function is running");
    eprintln!(
        "resident {rss_mib} MiB of which anonymous {baseline_mib} MiB; memory setting {memory_mib} MiB; anonymous now {} MiB",
        anon / 1024
    );
    assert!(
        rss_mib > baseline_mib,
        "the fixture's embedded models are resident file pages, not counted"
    );
    assert!(
        anon <= memory_mib * 1024,
        "anonymous memory {anon} KiB over the {memory_mib} MiB setting"
    );
    if let Some(used) = f.max_memory_used().await {
        assert!(used <= memory_mib << 20, "{used} bytes charged");
    }
}
