//! Hostile requests against a real `bootstrap`: each case sent as raw bytes, its answer
//! checked against the contract (the expected status, a JSON error body, a bounded message,
//! an answer within Lambda's response limit), then a normal request that must still be
//! answered 200, so no case can leave the function broken.

use runtime_emulator::{EmulatorError, Function, Outcome};
use serde_json::Value;

use crate::function::TIMEOUT;

/// Lambda's synchronous response limit.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
/// The longest error message a caller may get (the function cuts at 1,024 characters).
const MAX_ERROR_CHARS: usize = 1100;

/// What a case must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// This HTTP status: `statusCode` of an HTTP-shaped answer, else the body's `status`
    /// (200 when a direct answer carries none).
    Status(u16),
    /// A failed invocation (records from an event source, which must be retried).
    InvocationError,
    /// Refused before the function sees it, as Lambda refuses an event over 6 MB.
    RefusedByLambda,
}

pub struct Case {
    pub name: String,
    /// The invocation payload, exactly as sent.
    pub payload: Vec<u8>,
    pub want: Want,
    /// Text the error message must contain (for a non-200 status).
    pub says: &'static str,
}

impl Case {
    pub fn raw(
        name: impl Into<String>,
        payload: impl Into<Vec<u8>>,
        want: u16,
        says: &'static str,
    ) -> Self {
        Case {
            name: name.into(),
            payload: payload.into(),
            want: Want::Status(want),
            says,
        }
    }

    pub fn json(name: impl Into<String>, payload: &Value, want: u16, says: &'static str) -> Self {
        Self::raw(name, serde_json::to_vec(payload).unwrap(), want, says)
    }

    /// An event Lambda itself refuses (over its 6 MB payload limit): the emulator must too.
    pub fn over_lambdas_limit(name: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Case {
            name: name.into(),
            payload: payload.into(),
            want: Want::RefusedByLambda,
            says: "",
        }
    }

    pub fn refused(name: impl Into<String>, payload: &Value) -> Self {
        Case {
            name: name.into(),
            payload: serde_json::to_vec(payload).unwrap(),
            want: Want::InvocationError,
            says: "",
        }
    }
}

/// The status and JSON body of one answer.
fn status_and_body(answer: &Value) -> (u16, Value) {
    if let Some(code) = answer.get("statusCode").and_then(Value::as_u64) {
        let body = answer["body"]
            .as_str()
            .expect("an HTTP answer has a text body");
        let body: Value = serde_json::from_str(body).expect("the HTTP body is JSON");
        return (code as u16, body);
    }
    let status = answer.get("status").and_then(Value::as_u64).unwrap_or(200);
    (status as u16, answer.clone())
}

/// Runs every case, each followed by `normal` (which must answer 200). Panics listing
/// every case that broke the contract.
pub async fn run(f: &Function, cases: &[Case], normal: &Value) {
    let normal = serde_json::to_vec(normal).unwrap();
    let mut failures = Vec::new();
    for case in cases {
        if let Err(why) = run_case(f, case, &normal).await {
            failures.push(format!("case {:?}: {why}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

async fn run_case(f: &Function, case: &Case, normal: &[u8]) -> Result<(), String> {
    {
        let outcome = f.invoke(case.payload.clone(), TIMEOUT).await;
        let fail = |why: String| -> Result<(), String> { Err(why) };
        match (case.want, outcome) {
            (Want::InvocationError, Ok(Outcome::Error { .. })) => {}
            (Want::InvocationError, other) => {
                return fail(format!("expected a failed invocation, got {other:?}"))
            }
            (Want::RefusedByLambda, Err(EmulatorError::RequestTooLarge(_))) => {}
            (Want::RefusedByLambda, other) => {
                return fail(format!(
                    "expected Lambda's refusal of the event, got {other:?}"
                ))
            }
            (Want::Status(want), Ok(Outcome::Response(bytes))) => {
                if bytes.len() > MAX_RESPONSE_BYTES {
                    return fail(format!(
                        "a {}-byte answer is over Lambda's limit",
                        bytes.len()
                    ));
                }
                let answer: Value = match serde_json::from_slice(&bytes) {
                    Ok(a) => a,
                    Err(e) => return fail(format!("the answer is not JSON: {e}")),
                };
                let (status, body) = status_and_body(&answer);
                let cut: String = body.to_string().chars().take(300).collect();
                if status != want {
                    return fail(format!("status {status}, expected {want}: {cut}"));
                }
                if want != 200 {
                    let Some(error) = body["error"].as_str() else {
                        return fail(format!("an error without a message: {cut}"));
                    };
                    if body["status"] != want {
                        return fail(format!("the body's status is not {want}: {cut}"));
                    }
                    if error.chars().count() > MAX_ERROR_CHARS {
                        return fail(format!(
                            "a {}-character error message",
                            error.chars().count()
                        ));
                    }
                    if !error.contains(case.says) {
                        return fail(format!("the error does not say {:?}: {cut}", case.says));
                    }
                }
            }
            (Want::Status(_), other) => return fail(format!("expected an answer, got {other:?}")),
        }
        match f.invoke(normal.to_vec(), TIMEOUT).await {
            Ok(Outcome::Response(bytes)) => {
                let answer: Value = serde_json::from_slice(&bytes).unwrap();
                let (status, body) = status_and_body(&answer);
                if status != 200 {
                    return fail(format!("the normal request after it got {status}: {body}"));
                }
            }
            other => return fail(format!("the normal request after it failed: {other:?}")),
        }
    }
    Ok(())
}
