//! Each event kind, from fixture events shaped like the ones AWS sends, through the real
//! registry serving the committed default model.

use base64::Engine as _;
use inference_core::prepare::{self, Quantize};
use inference_core::{ModelEntry, PackedModel, Registry};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::{bounded, Answer, Cors, Http, MAX_RESPONSE_BYTES};

/// The payload `super::handle` answers `event` with.
fn handle(registry: &Registry, event: Value) -> Value {
    let raw = serde_json::value::to_raw_value(&event).unwrap();
    let answer =
        super::handle(registry, &Cors::default(), &raw, None).expect("a request is answered");
    serde_json::from_str(answer.payload.get()).unwrap()
}

/// The record `super::handle` keeps of `event`.
fn record(registry: &Registry, event: Value) -> Option<inference_core::RequestRecord> {
    let raw = serde_json::value::to_raw_value(&event).unwrap();
    super::handle(registry, &Cors::default(), &raw, None)
        .unwrap()
        .record
}

const MODEL: &[u8] = include_bytes!("../../../models/default/breast_cancer_lr.onnx");
const EXAMPLE: &str = include_str!("../../../models/default/example_request.json");

fn registry() -> Registry {
    let prepared = prepare::prepare(MODEL, Quantize::None, &[]).unwrap();
    let entry = ModelEntry {
        name: "breast-cancer".into(),
        file: "breast-cancer.onnx".into(),
        format: Default::default(),
        sha256: inference_core::sha256_hex(&prepared.packed),
        size: prepared.packed.len() as u64,
        source_sha256: None,
        external_data_sha256: Default::default(),
        artifact: Default::default(),
        embed: true,
        labels: vec!["malignant".into(), "benign".into()],
        class_labels: None,
        inputs: prepared.signature.inputs,
        outputs: prepared.signature.outputs,
        tokenizer: None,
        pipeline: None,
        limits: Default::default(),
        memory: None,
        constants: Default::default(),
        plans: Default::default(),
    };
    let model = PackedModel {
        entry,
        bytes: Some(prepared.packed.into()),
        tokenizer: None,
    };
    let settings = inference_core::Settings::embedded_only(inference_core::LoadMode::Eager);
    Registry::new(vec![model], None, &settings).unwrap()
}

/// A fixture event with `body` in place.
fn event(fixture: &str, body: Option<&str>) -> Value {
    let text = match fixture {
        "apigw-v1-post" => include_str!("fixtures/apigw-v1-post.json"),
        "apigw-v2-post" => include_str!("fixtures/apigw-v2-post.json"),
        "function-url-post-base64" => include_str!("fixtures/function-url-post-base64.json"),
        "function-url-get" => include_str!("fixtures/function-url-get.json"),
        other => panic!("no fixture {other}"),
    };
    let mut event: Value = serde_json::from_str(text).unwrap();
    if let Some(body) = body {
        event["body"] = json!(body);
    }
    event
}

/// The status, content type and parsed JSON body of an HTTP-shaped answer.
struct HttpAnswer {
    status: u64,
    content_type: String,
    body: Value,
}

fn http(answer: Value) -> HttpAnswer {
    HttpAnswer {
        status: answer["statusCode"].as_u64().expect("statusCode"),
        content_type: answer["headers"]["content-type"]
            .as_str()
            .unwrap_or_default()
            .into(),
        body: serde_json::from_str(answer["body"].as_str().expect("a text body")).unwrap(),
    }
}

#[test]
fn rest_api_v1_post_is_answered_in_the_v1_shape() {
    let r = registry();
    let answer = handle(&r, event("apigw-v1-post", Some(EXAMPLE)));
    // Only v2's response type has `cookies`.
    assert!(answer.get("cookies").is_none(), "{answer}");
    let a = http(answer);
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (200, "application/json")
    );
    assert_eq!(a.body["model"], "breast-cancer");
    assert_eq!(a.body["labels"].as_array().unwrap().len(), 1);
}

#[test]
fn http_api_v2_post_is_answered_in_the_v2_shape() {
    let r = registry();
    let answer = handle(&r, event("apigw-v2-post", Some(EXAMPLE)));
    assert!(answer.get("cookies").is_some(), "{answer}");
    let a = http(answer);
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (200, "application/json")
    );
    assert_eq!(a.body["prediction"], a.body["outputs"]["label"]);
}

#[test]
fn function_url_base64_bodies_are_decoded() {
    let r = registry();
    let encoded = base64::engine::general_purpose::STANDARD.encode(EXAMPLE);
    let a = http(handle(
        &r,
        event("function-url-post-base64", Some(&encoded)),
    ));
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["model"], "breast-cancer");

    let a = http(handle(
        &r,
        event("function-url-post-base64", Some("@@not base64@@")),
    ));
    assert_eq!(a.status, 400);
    assert!(
        a.body["error"].as_str().unwrap().contains("base64"),
        "{}",
        a.body
    );
}

#[test]
fn function_url_get_lists_the_models() {
    let r = registry();
    let a = http(handle(&r, event("function-url-get", None)));
    assert_eq!(a.status, 200);
    assert_eq!(a.body["models"][0]["name"], "breast-cancer");
}

#[test]
fn http_errors_keep_the_http_shape_and_status() {
    let r = registry();
    for (fixture, body, status, needle) in [
        ("apigw-v2-post", None, 400, "empty request body"),
        (
            "apigw-v1-post",
            Some("{\"features\": [1]}"),
            400,
            "expects 30",
        ),
        (
            "apigw-v2-post",
            Some("{\"model\": \"nope\", \"features\": [1]}"),
            404,
            "unknown model",
        ),
        ("apigw-v2-post", Some("not json"), 400, "JSON"),
    ] {
        let mut e = event(fixture, body);
        if body.is_none() {
            e.as_object_mut().unwrap().remove("body");
        }
        let a = http(handle(&r, e));
        assert_eq!(a.status, status, "{fixture} {body:?}: {}", a.body);
        assert_eq!(a.body["status"], json!(status));
        assert!(
            a.body["error"].as_str().unwrap().contains(needle),
            "{}",
            a.body
        );
    }

    let mut put = event("apigw-v1-post", Some(EXAMPLE));
    put["httpMethod"] = json!("DELETE");
    let a = http(handle(&r, put));
    assert_eq!(a.status, 400);
    assert!(
        a.body["error"].as_str().unwrap().contains("DELETE"),
        "{}",
        a.body
    );
}

#[test]
fn a_malformed_gateway_event_is_a_400_not_a_failure() {
    let r = registry();
    let mut e = event("apigw-v2-post", Some(EXAMPLE));
    e["isBase64Encoded"] = json!("yes");
    let a = http(handle(&r, e));
    assert_eq!(a.status, 400);
    assert!(
        a.body["error"]
            .as_str()
            .unwrap()
            .contains("malformed API Gateway event"),
        "{}",
        a.body
    );
}

#[test]
fn direct_invocations_answer_the_bare_json() {
    let r = registry();
    let answer = handle(&r, serde_json::from_str(EXAMPLE).unwrap());
    assert!(answer.get("statusCode").is_none(), "{answer}");
    assert_eq!(answer["model"], "breast-cancer");

    let answer = handle(&r, json!({"model": "nope", "features": [1]}));
    assert_eq!(answer["status"], 404, "{answer}");
    // A direct event that merely has a requestContext is still a direct request.
    let answer = handle(&r, json!({"requestContext": {}, "features": [1]}));
    assert_eq!(answer["status"], 400, "{answer}");
}

#[test]
fn records_from_event_sources_fail_the_invocation() {
    let r = registry();
    for (event, source) in [
        (
            json!({"Records": [{"eventSource": "aws:sqs", "body": EXAMPLE}]}),
            "SQS",
        ),
        (
            json!({"Records": [{"EventSource": "aws:sns", "Sns": {}}]}),
            "SNS",
        ),
        (
            json!({"Records": [{"eventSource": "aws:s3", "s3": {}}]}),
            "S3",
        ),
        (
            json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}),
            "EventBridge",
        ),
    ] {
        let raw = serde_json::value::to_raw_value(&event).unwrap();
        let e = super::handle(&r, &Cors::default(), &raw, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains(source) && e.contains("not"), "{e}");
    }
}

#[test]
fn raw_events_the_runtime_could_not_parse_get_our_400() {
    let r = registry();
    for (text, needle) in [
        (
            format!("{}{}", "[".repeat(5000), "]".repeat(5000)),
            "recursion limit",
        ),
        (
            r#"{"features": [1], "features": [2]}"#.to_string(),
            "duplicate key",
        ),
    ] {
        let raw = RawValue::from_string(text).unwrap();
        let answer: Value = serde_json::from_str(
            super::handle(&r, &Cors::default(), &raw, None)
                .unwrap()
                .payload
                .get(),
        )
        .unwrap();
        assert_eq!(answer["status"], 400, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(needle),
            "{answer}"
        );
    }
}

#[test]
fn answers_over_lambdas_limit_become_413_in_the_same_shape() {
    let big = json!({"outputs": {"x": "a".repeat(MAX_RESPONSE_BYTES)}});
    let recorded = inference_core::RequestRecord {
        model: Some("m".into()),
        source: Some("embedded"),
        rows: 1,
        status: 200,
        duration: Default::default(),
    };
    let direct = bounded(Answer {
        payload: big.clone(),
        http: None,
        record: Some(recorded),
    });
    assert_eq!(direct.record.unwrap().status, 413, "recorded as answered");
    let direct: Value = serde_json::from_str(direct.payload.get()).unwrap();
    assert_eq!(direct["status"], 413, "{direct}");
    assert!(direct["error"].as_str().unwrap().contains("\"return\""));
    let v2 = bounded(Answer {
        payload: big,
        http: Some((Http::V2, Default::default())),
        record: None,
    })
    .payload;
    let v2 = http(serde_json::from_str(v2.get()).unwrap());
    assert_eq!(v2.status, 413);
    assert!(v2.body["error"]
        .as_str()
        .unwrap()
        .contains("response limit"));
    // Under the limit, the answer is untouched.
    let small = json!({"a": 1});
    let answer = bounded(Answer {
        payload: small.clone(),
        http: None,
        record: None,
    });
    assert_eq!(answer.payload.get(), small.to_string());
}

#[test]
fn each_request_is_recorded_with_its_model_rows_and_status() {
    let r = registry();
    let ok = record(&r, serde_json::from_str(EXAMPLE).unwrap()).unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(ok.model.as_deref(), Some("breast-cancer"));
    assert_eq!(ok.source, Some("embedded"));
    assert_eq!(ok.rows, 1);
    let batch = record(&r, json!({"features": vec![vec![0.5; 30]; 3]})).unwrap();
    assert_eq!(batch.rows, 3);
    // A model this function does not serve is recorded without a name: a caller cannot
    // mint metric dimensions.
    let unknown = record(&r, json!({"model": "nope", "features": [1.0]})).unwrap();
    assert_eq!((unknown.status, unknown.model), (404, None));
    let bad = record(&r, json!({"features": "x"})).unwrap();
    assert_eq!(bad.status, 400);
    assert_eq!(bad.model.as_deref(), Some("breast-cancer"));
    assert!(bad.failed_validation());
    let unparsable = RawValue::from_string("{\"a\":1,\"a\":2}".into()).unwrap();
    let unparsable = super::handle(&r, &Cors::default(), &unparsable, None)
        .unwrap()
        .record
        .unwrap();
    assert_eq!((unparsable.status, unparsable.model), (400, None));
    // Listing the models is not an inference request.
    assert_eq!(record(&r, event("function-url-get", None)), None);
}

#[test]
fn preflights_are_answered_and_answers_carry_the_allowed_origin() {
    let r = registry();
    let cors = Cors::new(vec!["https://app.example.com".into()]);
    let with = |method: &str, origin: &str| {
        let mut e = event("apigw-v2-post", Some(EXAMPLE));
        e["requestContext"]["http"]["method"] = json!(method);
        e["headers"]["origin"] = json!(origin);
        let raw = serde_json::value::to_raw_value(&e).unwrap();
        let answer = super::handle(&r, &cors, &raw, None).unwrap().payload;
        serde_json::from_str::<Value>(answer.get()).unwrap()
    };
    let preflight = with("OPTIONS", "https://app.example.com");
    assert_eq!(preflight["statusCode"], 204, "{preflight}");
    assert!(
        preflight.get("body").is_none_or(Value::is_null),
        "{preflight}"
    );
    let headers = &preflight["headers"];
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(headers["access-control-allow-methods"]
        .as_str()
        .unwrap()
        .contains("POST"));
    let post = with("POST", "https://app.example.com");
    assert_eq!(post["statusCode"], 200);
    assert_eq!(
        post["headers"]["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(post["headers"]["content-type"], "application/json");
    // Another origin gets the answer without CORS headers: its browser withholds it.
    let other = with("POST", "https://other.example.com");
    assert!(other["headers"]
        .get("access-control-allow-origin")
        .is_none());
}
