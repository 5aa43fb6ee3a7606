//! Which kind of event arrived (API Gateway REST v1, HTTP API v2 / Function URL, or a
//! direct invocation) and how to answer it in the same shape.

use aws_lambda_events::apigw::{
    ApiGatewayProxyRequest, ApiGatewayProxyResponse, ApiGatewayV2httpRequest,
    ApiGatewayV2httpResponse,
};
use aws_lambda_events::encodings::Body;
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, Method};
use inference_core::{Registry, RequestError};
use serde_json::Value;

enum Http {
    V1,
    V2,
}

/// An HTTP request, whichever API Gateway flavour carried it.
struct HttpRequest {
    method: Method,
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

/// Handles any event; always returns a payload (errors are answers, never invocation
/// failures, so a bad request cannot cost a sandbox).
pub fn handle(registry: &Registry, event: Value) -> Value {
    let (kind, parsed) = if is_v2(&event) {
        (
            Http::V2,
            serde_json::from_value::<ApiGatewayV2httpRequest>(event).map(|r| HttpRequest {
                method: r.request_context.http.method,
                body: r.body,
                is_base64: r.is_base64_encoded,
            }),
        )
    } else if is_v1(&event) {
        (
            Http::V1,
            serde_json::from_value::<ApiGatewayProxyRequest>(event).map(|r| HttpRequest {
                method: r.http_method,
                body: r.body,
                is_base64: r.is_base64_encoded,
            }),
        )
    } else {
        // A direct invocation: the event is the request.
        return match registry.handle_value(event) {
            Ok(v) => v,
            Err(e) => e.to_json(),
        };
    };
    let (status, body) = match parsed {
        Ok(req) => answer_http(registry, req),
        Err(e) => {
            let err = RequestError::bad(format!("malformed API Gateway event: {e}"));
            (err.status(), err.to_json())
        }
    };
    http_response(kind, status, &body)
}

fn answer_http(registry: &Registry, req: HttpRequest) -> (u16, Value) {
    let result = match req.method {
        Method::GET => Ok(registry.describe()),
        Method::POST | Method::PUT => decode_body(&req).and_then(|b| registry.handle(&b)),
        other => Err(RequestError::bad(format!(
            "method {other} is not supported: POST a JSON request, or GET the list of models"
        ))),
    };
    match result {
        Ok(v) => (200, v),
        Err(e) => (e.status(), e.to_json()),
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

fn http_response(kind: Http, status: u16, body: &Value) -> Value {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let text = Some(Body::Text(body.to_string()));
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
