//! `--url`: a Function URL on the alias, and with `--public` the two resource-based
//! permissions Lambda requires before anyone may call it unsigned (`lambda:InvokeFunctionUrl`
//! for auth type NONE, and `lambda:InvokeFunction` through a function URL). Back to IAM auth,
//! both are removed again.

use anyhow::{Context, Result};
use aws_sdk_lambda::error::SdkError;
use aws_sdk_lambda::types::{Cors, FunctionUrlAuthType};
use aws_sdk_lambda::Client;

use super::config::UrlSettings;
use super::lambda::api;

/// The statement ids of the public permissions (the ones the Lambda console uses).
const PUBLIC_URL_STATEMENT: &str = "FunctionURLAllowPublicAccess";
const PUBLIC_INVOKE_STATEMENT: &str = "FunctionURLAllowInvokeAction";

/// What a browser may send: JSON, and the headers of a SigV4-signed call.
pub(super) const CORS_HEADERS: [&str; 5] = [
    "content-type",
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

fn cors(origins: &[String]) -> Cors {
    Cors::builder()
        .set_allow_origins(Some(origins.to_vec()))
        .set_allow_methods(Some(vec!["GET".into(), "POST".into()]))
        .set_allow_headers(Some(CORS_HEADERS.map(String::from).to_vec()))
        .max_age(600)
        .build()
}

fn auth(url: &UrlSettings) -> FunctionUrlAuthType {
    if url.public {
        FunctionUrlAuthType::None
    } else {
        FunctionUrlAuthType::AwsIam
    }
}

/// Creates or updates the alias's Function URL and its permissions; returns the URL.
pub async fn ensure(
    client: &Client,
    function: &str,
    alias: &str,
    url: &UrlSettings,
) -> Result<String> {
    let cors = (!url.cors_origins.is_empty()).then(|| cors(&url.cors_origins));
    let existing = client
        .get_function_url_config()
        .function_name(function)
        .qualifier(alias)
        .send()
        .await;
    let address = match existing {
        Ok(_) => {
            client
                .update_function_url_config()
                .function_name(function)
                .qualifier(alias)
                .auth_type(auth(url))
                // No origins: an empty CORS config clears what an earlier deploy set.
                .cors(cors.unwrap_or_else(|| Cors::builder().build()))
                .send()
                .await
                .map_err(|e| api("UpdateFunctionUrlConfig", e))?
                .function_url
        }
        Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => {
            client
                .create_function_url_config()
                .function_name(function)
                .qualifier(alias)
                .auth_type(auth(url))
                .set_cors(cors)
                .send()
                .await
                .map_err(|e| api("CreateFunctionUrlConfig", e))?
                .function_url
        }
        Err(e) => return Err(api("GetFunctionUrlConfig", e)),
    };
    if url.public {
        allow_public(client, function, alias).await?;
    } else {
        remove_public(client, function, alias).await?;
    }
    Ok(address)
}

async fn allow_public(client: &Client, function: &str, alias: &str) -> Result<()> {
    let url = client
        .add_permission()
        .function_name(function)
        .qualifier(alias)
        .statement_id(PUBLIC_URL_STATEMENT)
        .action("lambda:InvokeFunctionUrl")
        .principal("*")
        .function_url_auth_type(FunctionUrlAuthType::None)
        .send()
        .await;
    already_there(url, "AddPermission")?;
    let invoke = client
        .add_permission()
        .function_name(function)
        .qualifier(alias)
        .statement_id(PUBLIC_INVOKE_STATEMENT)
        .action("lambda:InvokeFunction")
        .principal("*")
        .invoked_via_function_url(true)
        .send()
        .await;
    already_there(invoke, "AddPermission")
}

/// A permission that is already in place (a redeploy) is what was wanted.
fn already_there<T, E>(result: Result<T, SdkError<E>>, what: &str) -> Result<()>
where
    E: aws_sdk_lambda::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(()),
        Err(SdkError::ServiceError(e))
            if aws_sdk_lambda::error::ProvideErrorMetadata::code(e.err())
                == Some("ResourceConflictException") =>
        {
            Ok(())
        }
        Err(e) => Err(api(what, e)),
    }
}

async fn remove_public(client: &Client, function: &str, alias: &str) -> Result<()> {
    for statement in [PUBLIC_URL_STATEMENT, PUBLIC_INVOKE_STATEMENT] {
        match client
            .remove_permission()
            .function_name(function)
            .qualifier(alias)
            .statement_id(statement)
            .send()
            .await
        {
            Ok(_) => {}
            Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => {}
            Err(e) => return Err(api("RemovePermission", e)),
        }
    }
    Ok(())
}

/// A `curl` command that calls the URL with `request` (JSON, one line; `None`: list the
/// models), signed with the caller's credentials for IAM auth.
pub fn curl(address: &str, region: &str, public: bool, request: Option<&str>) -> String {
    let mut cmd = format!("curl -s {}", shell_quote(address));
    if !public {
        cmd.push_str(&format!(
            " \\\n    --aws-sigv4 {} --user \"$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY\" -H \"x-amz-security-token: $AWS_SESSION_TOKEN\"",
            shell_quote(&format!("aws:amz:{region}:lambda"))
        ));
    }
    if let Some(body) = request {
        cmd.push_str(&format!(
            " \\\n    -H 'content-type: application/json' -d {}",
            shell_quote(body)
        ));
    }
    cmd
}

/// `s` as one single-quoted shell word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The region the SDK resolved, for the signed `curl`.
pub fn region(client: &Client) -> Result<String> {
    client
        .config()
        .region()
        .map(|r| r.to_string())
        .context("no AWS region: set AWS_REGION")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curl_signs_for_iam_and_quotes_the_body() {
        let iam = curl(
            "https://x.lambda-url.eu-west-1.on.aws/",
            "eu-west-1",
            false,
            Some(r#"{"text":"it's"}"#),
        );
        assert!(
            iam.contains("--aws-sigv4 'aws:amz:eu-west-1:lambda'"),
            "{iam}"
        );
        assert!(iam.contains(r#"-d '{"text":"it'\''s"}'"#), "{iam}");
        let public = curl("https://x/", "eu-west-1", true, None);
        assert_eq!(public, "curl -s 'https://x/'");
    }
}
