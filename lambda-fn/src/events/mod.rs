//! Which kind of event arrived (API Gateway REST v1, HTTP API v2 / Function URL, or a
//! direct invocation) and how to answer it in the same shape. Records from an event source
//! (SQS, SNS, S3, EventBridge, …) are refused as an invocation error, so the source retries
//! or dead-letters them instead of counting a 400 as delivered. Every answer is measured
//! against Lambda's response limit before it leaves.

use aws_lambda_events::apigw::{
    ApiGatewayProxyRequest, ApiGatewayProxyResponse, ApiGatewayV2httpRequest,
    ApiGatewayV2httpResponse,
};
use aws_lambda_events::encodings::Body;
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, Method};
use inference_core::{Answered, RequestRecord};
use inference_core::{Registry, RequestError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::value::RawValue;
use serde_json::Value;

mod cors;
pub use cors::Cors;

/// Lambda refuses a synchronous response over 6 MB (`Function.ResponseSizeTooLarge`, a 502
/// behind API Gateway); a larger answer becomes our 413 instead.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

/// An event this function does not answer: records from an event source.
#[derive(Debug, thiserror::Error)]
#[error("this function serves inference requests (API Gateway, Function URL or a direct invocation with a JSON request), not {0} records; the invocation fails so the source can retry or dead-letter them")]
pub struct NotARequest(&'static str);

#[derive(Debug, Clone, Copy)]
enum Http {
    V1,
    V2,
}

/// An HTTP request, whichever API Gateway flavour carried it.
struct HttpRequest {
    method: Method,
    origin: Option<String>,
    body: Option<String>,
    is_base64: bool,
}

fn is_v2(v: &Value) -> bool {
    v.get("requestContext")
        .and_then(|c| c.get("http"))
        .is_some_and(Value::is_object)
}

fn is_v1(v: &Value) -> bool {
    v.get("httpMethod").is_some() && v.get("requestContext").is_some()
}

/// The invocation's deadline (`Lambda-Runtime-Deadline-Ms`, milliseconds since the epoch)
/// on this process's monotonic clock.
pub fn deadline(deadline_ms: u64) -> Option<Instant> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_millis();
    let left = u128::from(deadline_ms).saturating_sub(now_ms);
    Some(Instant::now() + Duration::from_millis(u64::try_from(left).ok()?))
}

/// Which event source sent `v`, if it is a batch of records or a bus event.
fn event_source(v: &Value) -> Option<&'static str> {
    if let Some(first) = v
        .get("Records")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
    {
        let source = first
            .get("eventSource")
            .or_else(|| first.get("EventSource"))
            .and_then(Value::as_str)
            .unwrap_or("");
        return Some(match source {
            "aws:sqs" => "SQS",
            "aws:sns" => "SNS",
            "aws:s3" => "S3",
            "aws:dynamodb" => "DynamoDB stream",
            "aws:kinesis" => "Kinesis",
            _ => "event-source",
        });
    }
    if v.get("detail-type").is_some() && v.get("source").is_some() {
        return Some("EventBridge");
    }
    None
}

/// The answer to one event, and what the request did (none for a GET of the model list).
#[derive(Debug)]
pub struct Handled {
    pub payload: Box<RawValue>,
    pub record: Option<RequestRecord>,
}

/// Handles any event. Requests always get a payload (errors are answers, never invocation
/// failures, so a bad request cannot cost a sandbox); only records are refused.
pub fn handle(
    registry: &Registry,
    cors: &Cors,
    event: &RawValue,
    deadline: Option<Instant>,
) -> Result<Handled, NotARequest> {
    let started = Instant::now();
    // Parsed here, not by the runtime: nesting past serde's limit, a lone surrogate or a
    // duplicate key is then our 400, not a runtime deserialization failure.
    let event = match inference_core::parse_strict(event.get().as_bytes()) {
        Ok(event) => event,
        Err(e) => {
            return Ok(bounded(Answer {
                payload: e.to_json(),
                http: None,
                record: Some(RequestRecord::rejected(e.status(), started.elapsed())),
            }))
        }
    };
    if let Some(source) = event_source(&event) {
        return Err(NotARequest(source));
    }
    Ok(bounded(answer(registry, cors, event, deadline, started)))
}

/// An answer before it is measured against Lambda's limit.
struct Answer {
    payload: Value,
    /// The HTTP shape it was asked in and the CORS headers it carries; `None`: a direct
    /// invocation.
    http: Option<(Http, HeaderMap)>,
    record: Option<RequestRecord>,
}

/// The answer serialized, or a 413 in the same shape when it is over Lambda's limit (and
/// then so recorded).
fn bounded(answer: Answer) -> Handled {
    let Answer {
        payload,
        http,
        mut record,
    } = answer;
    let text = payload.to_string();
    let text = if text.len() <= MAX_RESPONSE_BYTES {
        text
    } else {
        let err = RequestError::bad(format!(
            "the answer is {} bytes, over Lambda's {MAX_RESPONSE_BYTES}-byte response limit: ask for fewer outputs with \"return\", or send a smaller batch",
            text.len()
        ));
        tracing::info!(status = 413, bytes = text.len(), "answer too large");
        if let Some(r) = &mut record {
            r.status = 413;
        }
        let body = serde_json::json!({"error": err.public_message(), "status": 413});
        match http {
            Some((kind, headers)) => http_response(kind, 413, Some(&body), headers).to_string(),
            None => body.to_string(),
        }
    };
    Handled {
        payload: RawValue::from_string(text).expect("serde_json output is valid JSON"),
        record,
    }
}

/// The answer to one request event, in the shape it was asked in.
fn answer(
    registry: &Registry,
    cors: &Cors,
    event: Value,
    deadline: Option<Instant>,
    started: Instant,
) -> Answer {
    let (kind, parsed) = if is_v2(&event) {
        (
            Http::V2,
            serde_json::from_value::<ApiGatewayV2httpRequest>(event).map(|r| HttpRequest {
                method: r.request_context.http.method,
                origin: origin(&r.headers),
                body: r.body,
                is_base64: r.is_base64_encoded,
            }),
        )
    } else if is_v1(&event) {
        (
            Http::V1,
            serde_json::from_value::<ApiGatewayProxyRequest>(event).map(|r| HttpRequest {
                method: r.http_method,
                origin: origin(&r.headers),
                body: r.body,
                is_base64: r.is_base64_encoded,
            }),
        )
    } else {
        // A direct invocation: the event is the request.
        let answered = registry.handle_value_until(event, deadline);
        return Answer {
            payload: answered.result.unwrap_or_else(|e| e.to_json()),
            http: None,
            record: Some(answered.record),
        };
    };
    let mut headers = HeaderMap::new();
    let answer = match parsed {
        Ok(req) => {
            let preflight = req.method == Method::OPTIONS;
            cors.add_headers(&mut headers, req.origin.as_deref(), preflight);
            answer_http(registry, req, deadline, started)
        }
        Err(e) => {
            let err = RequestError::bad(format!("malformed API Gateway event: {e}"));
            HttpAnswer::refused(err, started)
        }
    };
    Answer {
        payload: http_response(kind, answer.status, answer.body.as_ref(), headers.clone()),
        http: Some((kind, headers)),
        record: answer.record,
    }
}

/// The request's `Origin` header, for CORS.
fn origin(headers: &HeaderMap) -> Option<String> {
    headers
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// An HTTP request's answer, before it takes its event shape.
struct HttpAnswer {
    status: u16,
    /// `None`: no body (a preflight's 204).
    body: Option<Value>,
    record: Option<RequestRecord>,
}

impl HttpAnswer {
    fn refused(e: RequestError, started: Instant) -> Self {
        HttpAnswer {
            status: e.status(),
            body: Some(e.to_json()),
            record: Some(RequestRecord::rejected(e.status(), started.elapsed())),
        }
    }
}

fn answer_http(
    registry: &Registry,
    req: HttpRequest,
    deadline: Option<Instant>,
    started: Instant,
) -> HttpAnswer {
    match req.method {
        Method::GET => HttpAnswer {
            status: 200,
            body: Some(registry.describe()),
            record: None,
        },
        // A CORS preflight passed through by API Gateway: the headers say it all.
        Method::OPTIONS => HttpAnswer {
            status: 204,
            body: None,
            record: None,
        },
        Method::POST | Method::PUT => match decode_body(&req) {
            Ok(body) => {
                let Answered { result, record } = registry.handle_until(&body, deadline);
                let (status, body) = match result {
                    Ok(v) => (200, v),
                    Err(e) => (e.status(), e.to_json()),
                };
                HttpAnswer {
                    status,
                    body: Some(body),
                    record: Some(record),
                }
            }
            Err(e) => HttpAnswer::refused(e, started),
        },
        other => HttpAnswer::refused(
            RequestError::bad(format!(
                "method {other} is not supported: POST a JSON request, or GET the list of models"
            )),
            started,
        ),
    }
}

fn decode_body(req: &HttpRequest) -> Result<Vec<u8>, RequestError> {
    let Some(body) = req.body.as_deref().filter(|b| !b.is_empty()) else {
        return Err(RequestError::bad(
            "empty request body: POST a JSON object like {\"features\": [...]}",
        ));
    };
    if req.is_base64 {
        // Base64 grows the payload by 4/3: check the decoded size bound before decoding.
        if body.len() / 4 * 3 > inference_core::MAX_REQUEST_BYTES + 3 {
            return Err(RequestError::TooLarge {
                size: body.len() / 4 * 3,
                limit: inference_core::MAX_REQUEST_BYTES,
            });
        }
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| {
                RequestError::bad(format!("body is marked base64 but does not decode: {e}"))
            })
    } else {
        Ok(body.as_bytes().to_vec())
    }
}

/// The HTTP answer in `kind`'s shape: JSON (or no body), with `headers` added.
fn http_response(kind: Http, status: u16, body: Option<&Value>, mut headers: HeaderMap) -> Value {
    let text = body.map(|body| {
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        Body::Text(body.to_string())
    });
    let response = match kind {
        Http::V1 => {
            let mut r = ApiGatewayProxyResponse::default();
            r.status_code = status as i64;
            r.headers = headers;
            r.body = text;
            serde_json::to_value(r)
        }
        Http::V2 => {
            let mut r = ApiGatewayV2httpResponse::default();
            r.status_code = status as i64;
            r.headers = headers;
            r.body = text;
            serde_json::to_value(r)
        }
    };
    response.unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot encode the HTTP response");
        serde_json::json!({"statusCode": 500, "body": "{\"error\":\"internal error\",\"status\":500}"})
    })
}

#[cfg(test)]
mod tests;
