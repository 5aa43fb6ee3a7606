//! Reports a failed init through the Runtime API's `/runtime/init/error`, so Lambda shows
//! the reason and never routes an event to a half-working function.

use lambda_runtime_api_client::{body::Body, build_request, Client};

pub async fn report(message: &str) {
    let doc = serde_json::json!({
        "errorType": "Runtime.InitError",
        "errorMessage": message,
    });
    let result = async {
        let client = Client::builder().build()?;
        let req = build_request()
            .method(http::Method::POST)
            .uri("/2018-06-01/runtime/init/error")
            .header("lambda-runtime-function-error-type", "Runtime.InitError")
            .header("content-type", "application/json")
            .body(Body::from(doc.to_string()))?;
        client.call(req).await?;
        Ok::<(), lambda_runtime::Error>(())
    }
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "could not report the init error to the Runtime API");
    }
}
