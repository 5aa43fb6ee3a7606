use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use tokio::sync::{mpsc, oneshot, watch};

use crate::function::MAX_PAYLOAD_BYTES;
use crate::http_util::{response, serve, Body};
use crate::EmulatorError;

const PREFIX: &str = "/2018-06-01/runtime";

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `/response`: the function's payload.
    Response(Bytes),
    /// `/error`: the error document and the `Lambda-Runtime-Function-Error-Type` header.
    Error {
        error_type: Option<String>,
        body: Bytes,
    },
}

impl Outcome {
    pub fn json(&self) -> serde_json::Value {
        let bytes = match self {
            Outcome::Response(b) => b,
            Outcome::Error { body, .. } => body,
        };
        serde_json::from_slice(bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned())
        })
    }
}

/// A new invocation's request id and X-Ray trace header, shaped as Lambda's.
pub(crate) struct Ids {
    pub request_id: String,
    pub trace_id: String,
}

impl Ids {
    pub(crate) fn new() -> Self {
        let request_id = uuid::Uuid::new_v4().to_string();
        let trace_id = format!(
            "Root=1-{:08x}-{};Sampled=1",
            now_ms() / 1000,
            &request_id.replace('-', "")[..24]
        );
        Ids {
            request_id,
            trace_id,
        }
    }
}

struct Invocation {
    id: String,
    trace_id: String,
    payload: Bytes,
    deadline_ms: u64,
}

struct Shared {
    function_arn: String,
    queue_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: watch::Sender<Option<serde_json::Value>>,
}

/// The Runtime API on a loopback port. Cloning shares the same server.
#[derive(Clone)]
pub struct RuntimeApi {
    addr: SocketAddr,
    queue_tx: mpsc::UnboundedSender<Invocation>,
    shared: Arc<Shared>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl RuntimeApi {
    /// Starts the server on 127.0.0.1 with an ephemeral port.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:local".to_string(),
            queue_rx: tokio::sync::Mutex::new(queue_rx),
            waiting: Mutex::new(HashMap::new()),
            init_error: watch::channel(None).0,
        });
        let s = shared.clone();
        let addr = serve(addr, move |req| handle(s.clone(), req)).await?;
        Ok(RuntimeApi {
            addr,
            queue_tx,
            shared,
        })
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API` (`host:port`).
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// The init error the function posted, if any.
    pub fn init_error(&self) -> Option<serde_json::Value> {
        self.shared.init_error.borrow().clone()
    }

    /// Forgets the init error: a new process is about to initialise.
    pub(crate) fn clear_init_error(&self) {
        self.shared.init_error.send_replace(None);
    }

    /// Waits until the function posts an init error.
    pub async fn wait_init_error(&self, timeout: Duration) -> Option<serde_json::Value> {
        let mut rx = self.shared.init_error.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|v| v.is_some())).await;
        match waited {
            Ok(Ok(v)) => v.clone(),
            _ => None,
        }
    }

    /// Queues one invocation with the request id and X-Ray trace header the function is sent,
    /// as Lambda sends them (`Lambda-Runtime-Aws-Request-Id`, `-Trace-Id`), and waits for
    /// its outcome (or an init error, or the timeout).
    pub async fn invoke_as(
        &self,
        request_id: &str,
        trace_id: &str,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Outcome, EmulatorError> {
        let id = request_id.to_string();
        let (tx, rx) = oneshot::channel();
        self.shared
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), tx);
        let inv = Invocation {
            id: id.clone(),
            trace_id: trace_id.to_string(),
            payload: payload.into(),
            deadline_ms: now_ms() + timeout.as_millis() as u64,
        };
        let _ = self.queue_tx.send(inv);
        let mut init = self.shared.init_error.subscribe();
        let result = tokio::select! {
            r = rx => r.map_err(|_| EmulatorError::Timeout(timeout)),
            Ok(v) = init.wait_for(|v| v.is_some()) => Err(EmulatorError::Init(v.clone().unwrap_or_default())),
            _ = tokio::time::sleep(timeout) => Err(EmulatorError::Timeout(timeout)),
        };
        if result.is_err() {
            self.shared
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        }
        result
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return response(404, "text/plain", "not found");
    };
    let error_type = req
        .headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return response(400, "text/plain", "unreadable body"),
    };
    match (method, rest) {
        (Method::GET, "/invocation/next") => next(&shared).await,
        (Method::POST, "/init/error") => {
            let doc = serde_json::from_slice(&body).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())
            });
            shared.init_error.send_replace(Some(doc));
            response(202, "application/json", r#"{"status":"OK"}"#)
        }
        (Method::POST, rest) => {
            let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
            let too_large = body.len() > MAX_PAYLOAD_BYTES;
            let outcome = match parts.as_slice() {
                // Lambda refuses the response and the caller gets this error instead.
                ["invocation", _, "response"] if too_large => Outcome::Error {
                    error_type: Some("Function.ResponseSizeTooLarge".into()),
                    body: serde_json::json!({
                        "errorType": "Function.ResponseSizeTooLarge",
                        "errorMessage": format!(
                            "Response payload size ({} bytes) exceeded maximum allowed payload size ({MAX_PAYLOAD_BYTES} bytes).",
                            body.len()
                        ),
                    })
                    .to_string()
                    .into(),
                },
                ["invocation", _, "response"] => Outcome::Response(body),
                ["invocation", _, "error"] => Outcome::Error { error_type, body },
                _ => return response(404, "text/plain", "not found"),
            };
            let waiter = shared
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(parts[1]);
            match waiter {
                Some(tx) if too_large => {
                    let _ = tx.send(outcome);
                    response(
                        413,
                        "application/json",
                        r#"{"errorMessage":"response payload too large","errorType":"RequestEntityTooLarge"}"#,
                    )
                }
                Some(tx) => {
                    let _ = tx.send(outcome);
                    response(202, "application/json", r#"{"status":"OK"}"#)
                }
                None => response(
                    400,
                    "application/json",
                    r#"{"errorMessage":"unknown or already answered request id","errorType":"InvalidRequestID"}"#,
                ),
            }
        }
        _ => response(404, "text/plain", "not found"),
    }
}

async fn next(shared: &Shared) -> Response<Body> {
    let inv = {
        let mut rx = shared.queue_rx.lock().await;
        rx.recv().await
    };
    let Some(inv) = inv else {
        return response(500, "text/plain", "emulator stopped");
    };
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("lambda-runtime-aws-request-id", &inv.id)
        .header("lambda-runtime-deadline-ms", inv.deadline_ms.to_string())
        .header("lambda-runtime-invoked-function-arn", &shared.function_arn)
        .header("lambda-runtime-trace-id", &inv.trace_id)
        .body(http_body_util::Full::new(inv.payload))
        .expect("static response parts are valid")
}
