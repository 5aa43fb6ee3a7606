//! An HTTP server on loopback that forwards each request to the function as an API Gateway
//! v2 event and turns the function's answer back into an HTTP response, so
//! `curl -d '{"features": [...]}' localhost:9000` behaves as it would behind API Gateway.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::http_util::{response, serve, Body};
use crate::{events, EmulatorError, Function, Outcome};

/// Starts the front door on `addr`, forwarding to `function`. Returns the bound address.
pub async fn start(
    addr: SocketAddr,
    function: Arc<Function>,
    timeout: Duration,
) -> std::io::Result<SocketAddr> {
    serve(addr, move |req| forward(function.clone(), timeout, req)).await
}

async fn forward(
    function: Arc<Function>,
    timeout: Duration,
    req: Request<Incoming>,
) -> Response<Body> {
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return response(400, "text/plain", "unreadable request body"),
    };
    let event = events::apigw_v2(&method, &path, &headers, &body, false);
    let payload = serde_json::to_vec(&event).unwrap_or_default();
    match function.invoke(payload, timeout).await {
        Ok(Outcome::Response(bytes)) => from_v2_response(&bytes),
        Ok(Outcome::Error { error_type, .. })
            if error_type.as_deref() == Some("Sandbox.Timedout") =>
        {
            response(
                504,
                "application/json",
                r#"{"message":"Endpoint request timed out"}"#,
            )
        }
        Ok(Outcome::Error { body, .. }) => response(502, "application/json", body),
        Err(EmulatorError::RequestTooLarge(_)) => response(
            413,
            "application/json",
            r#"{"message":"Request Entity Too Large"}"#,
        ),
        Err(e) => response(
            502,
            "application/json",
            serde_json::json!({"message": "Internal Server Error", "detail": e.to_string()})
                .to_string(),
        ),
    }
}

/// API Gateway's reading of a v2 function result: an object with `statusCode` is a full
/// response; anything else is a 200 JSON body.
fn from_v2_response(bytes: &[u8]) -> Response<Body> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return response(200, "application/json", bytes.to_vec());
    };
    let Some(status) = value.get("statusCode").and_then(|s| s.as_u64()) else {
        return response(200, "application/json", bytes.to_vec());
    };
    let body = value.get("body").and_then(|b| b.as_str()).unwrap_or("");
    let body = if value.get("isBase64Encoded").and_then(|b| b.as_bool()) == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap_or_default()
    } else {
        body.as_bytes().to_vec()
    };
    let mut builder = Response::builder().status(status as u16);
    if let Some(headers) = value.get("headers").and_then(|h| h.as_object()) {
        for (k, v) in headers {
            if let Some(v) = v.as_str() {
                builder = builder.header(k, v);
            }
        }
    }
    builder
        .body(http_body_util::Full::new(body.into()))
        .unwrap_or_else(|_| response(502, "text/plain", "malformed function response"))
}
