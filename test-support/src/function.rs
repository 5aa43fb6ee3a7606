//! A `bootstrap` under the Runtime API emulator, as the tests drive it.

use std::path::Path;
use std::time::Duration;

use runtime_emulator::{EmulatorError, Function, FunctionConfig, Outcome};
use serde_json::Value;

/// How long one invocation may take in a test.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Starts `bootstrap` with `env` added to Lambda's environment.
pub async fn start<K: AsRef<str>, V: AsRef<str>>(bootstrap: &Path, env: &[(K, V)]) -> Function {
    let mut config = FunctionConfig::new(bootstrap);
    for (k, v) in env {
        config = config.env(k.as_ref(), v.as_ref());
    }
    Function::start(config).await.expect("bootstrap starts")
}

/// One invocation that must produce a response; the function's logs on failure.
pub async fn invoke(f: &Function, request: &Value) -> Value {
    match f
        .invoke(serde_json::to_vec(request).unwrap(), TIMEOUT)
        .await
    {
        Ok(Outcome::Response(body)) => serde_json::from_slice(&body).expect("JSON response"),
        other => panic!(
            "invocation failed: {other:?}\nlogs:\n{}",
            f.logs().join("\n")
        ),
    }
}

/// The init error the function reported (its `errorMessage`), which must be one.
pub async fn init_error(f: &Function) -> String {
    match f.invoke(b"{}".to_vec(), TIMEOUT).await {
        Err(EmulatorError::Init(doc)) => {
            assert_eq!(doc["errorType"], "Runtime.InitError", "{doc}");
            doc["errorMessage"].as_str().unwrap().to_string()
        }
        other => panic!(
            "expected an init error, got {other:?}\nlogs:\n{}",
            f.logs().join("\n")
        ),
    }
}

/// Every line the function wrote that is a JSON object (log lines and EMF documents).
pub fn json_lines(f: &Function) -> Vec<Value> {
    f.logs()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

/// The function's JSON log lines whose message is `message`.
pub fn log_lines(f: &Function, message: &str) -> Vec<Value> {
    json_lines(f)
        .into_iter()
        .filter(|v| v["message"] == message)
        .collect()
}
