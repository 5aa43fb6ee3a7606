//! The event documents Lambda hands a function, as API Gateway and Function URLs send them.

use base64::Engine as _;
use serde_json::{json, Value};

fn body_fields(body: &[u8]) -> (Value, bool) {
    match std::str::from_utf8(body) {
        Ok(s) => (Value::String(s.to_string()), false),
        Err(_) => (
            Value::String(base64::engine::general_purpose::STANDARD.encode(body)),
            true,
        ),
    }
}

/// An HTTP API (payload 2.0) event; Function URLs send the same shape.
pub fn apigw_v2(
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
    force_base64: bool,
) -> Value {
    let (mut body_value, mut b64) = body_fields(body);
    if force_base64 {
        body_value = Value::String(base64::engine::general_purpose::STANDARD.encode(body));
        b64 = true;
    }
    let (raw_path, query) = path.split_once('?').unwrap_or((path, ""));
    let hdrs: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v.clone())))
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": hdrs,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("user-agent")).map(|(_, v)| v.as_str()).unwrap_or("local")
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": now
        },
        "body": body_value,
        "isBase64Encoded": b64
    })
}

/// A REST API (payload 1.0) proxy event.
pub fn apigw_v1(method: &str, path: &str, body: &[u8], force_base64: bool) -> Value {
    let (mut body_value, mut b64) = body_fields(body);
    if force_base64 {
        body_value = Value::String(base64::engine::general_purpose::STANDARD.encode(body));
        b64 = true;
    }
    json!({
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"Content-Type": ["application/json"]},
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "pathParameters": {"proxy": path.trim_start_matches('/')},
        "stageVariables": null,
        "requestContext": {
            "accountId": "123456789012",
            "resourceId": "abc123",
            "stage": "prod",
            "requestId": uuid::Uuid::new_v4().to_string(),
            "identity": {"sourceIp": "127.0.0.1", "userAgent": "local"},
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "apiId": "local",
            "protocol": "HTTP/1.1"
        },
        "body": body_value,
        "isBase64Encoded": b64
    })
}
