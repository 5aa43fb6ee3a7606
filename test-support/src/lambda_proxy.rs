//! moto's server has no provisioned-concurrency API. This loopback proxy stands in front of
//! it for the Lambda API: it records every request, answers `PutProvisionedConcurrencyConfig`
//! and `GetProvisionedConcurrencyConfig` itself in the shapes Lambda's API reference gives (the
//! allocation `IN_PROGRESS` on the first read, `READY` after), and forwards everything else to
//! moto unchanged. Point a client at it with `AWS_ENDPOINT_URL_LAMBDA`.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use runtime_emulator::http_util::{response, serve, Body};
use serde_json::{json, Value};

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, e.g. `/2019-09-30/functions/onnx/provisioned-concurrency?Qualifier=live`.
    pub target: String,
    pub body: Bytes,
}

#[derive(Default)]
struct State {
    recorded: Vec<Recorded>,
    /// The provisioned concurrency asked for, and how many reads of it there have been.
    provisioned: Option<(i64, u32)>,
}

pub struct LambdaProxy {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    _runtime: tokio::runtime::Runtime,
}

impl LambdaProxy {
    pub fn start(moto_endpoint: &str) -> LambdaProxy {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime for the proxy");
        let state = Arc::new(Mutex::new(State::default()));
        let upstream = moto_endpoint.trim_end_matches('/').to_string();
        let client = reqwest::Client::new();
        let shared = state.clone();
        let addr = runtime
            .block_on(serve(([127, 0, 0, 1], 0).into(), move |req| {
                handle(req, shared.clone(), client.clone(), upstream.clone())
            }))
            .expect("the proxy binds a loopback port");
        LambdaProxy {
            endpoint: format!("http://{addr}"),
            state,
            _runtime: runtime,
        }
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().recorded.clone()
    }
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
    client: reqwest::Client,
    upstream: String,
) -> Response<Body> {
    let method = req.method().clone();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let headers = req.headers().clone();
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return response(400, "text/plain", "unreadable body");
    };
    state.lock().unwrap().recorded.push(Recorded {
        method: method.to_string(),
        target: target.clone(),
        body: body.clone(),
    });
    if target.contains("/provisioned-concurrency") {
        return provisioned(&method, &body, &state);
    }
    let mut forward = client.request(method, format!("{upstream}{target}"));
    for (name, value) in headers.iter().filter(|(n, _)| !hop_by_hop(n.as_str())) {
        forward = forward.header(name, value);
    }
    match forward.body(body).send().await {
        Ok(answer) => {
            let mut out = Response::builder().status(answer.status().as_u16());
            for (name, value) in answer.headers() {
                if !hop_by_hop(name.as_str()) {
                    out = out.header(name, value);
                }
            }
            let body = answer.bytes().await.unwrap_or_default();
            out.body(http_body_util::Full::new(body))
                .unwrap_or_else(|_| response(502, "text/plain", "bad upstream answer"))
        }
        Err(e) => response(502, "text/plain", e.to_string()),
    }
}

/// Headers each side sets for itself (the body's length is recomputed).
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "host" | "content-length" | "transfer-encoding" | "connection" | "keep-alive"
    )
}

/// Lambda's provisioned-concurrency answers: `PUT` accepts the request (202, in progress),
/// the first `GET` says in progress, later ones ready.
fn provisioned(method: &hyper::Method, body: &[u8], state: &Mutex<State>) -> Response<Body> {
    let mut state = state.lock().unwrap();
    let answer = |requested: i64, ready: bool| {
        json!({
            "RequestedProvisionedConcurrentExecutions": requested,
            "AvailableProvisionedConcurrentExecutions": if ready { requested } else { 0 },
            "AllocatedProvisionedConcurrentExecutions": if ready { requested } else { 0 },
            "Status": if ready { "READY" } else { "IN_PROGRESS" },
            "LastModified": "2026-12-02T00:00:00+0000"
        })
        .to_string()
    };
    match *method {
        hyper::Method::PUT => {
            let asked: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let n = asked["ProvisionedConcurrentExecutions"]
                .as_i64()
                .unwrap_or(0);
            state.provisioned = Some((n, 0));
            response(202, "application/json", answer(n, false))
        }
        hyper::Method::GET => match &mut state.provisioned {
            Some((n, reads)) => {
                *reads += 1;
                response(200, "application/json", answer(*n, *reads > 1))
            }
            None => response(404, "application/json", r#"{"message":"no config"}"#),
        },
        _ => response(405, "text/plain", "method not allowed"),
    }
}
