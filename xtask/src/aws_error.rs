//! AWS failures as a person can act on them: what failed, the likely cause (no credentials,
//! no region, an unreachable endpoint, a missing permission named by its IAM action) and what
//! to run. The SDK's full error only with `-v`, where it is one more paragraph.

use std::error::Error as StdError;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_lambda::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// `-v`: every AWS failure also shows the SDK's full error.
pub fn set_verbose(verbose: bool) {
    VERBOSE.store(verbose, Ordering::Relaxed);
}

/// Why a call failed, as far as the error says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    NoCredentials,
    NoRegion,
    Unreachable,
    /// The credentials were refused or have expired.
    BadCredentials,
    /// The identity lacks the call's IAM permission.
    Denied,
    /// The service's own answer: its error code and message.
    Service {
        code: String,
        message: String,
    },
    Other,
}

/// `action` is the call's IAM action (`lambda:CreateFunction`), which a denied call names.
pub fn explain<E, R>(action: &str, e: SdkError<E, R>) -> anyhow::Error
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let cause = cause(&e);
    let mut text = message(action, &cause);
    if VERBOSE.load(Ordering::Relaxed) {
        text.push_str(&format!("\n\nfull error: {}", DisplayErrorContext(&e)));
    } else if matches!(cause, Cause::Other | Cause::Unreachable) {
        // Still two lines: the hint ends the second one (or is it, after a bare first).
        let hint = "`cargo xtask -v …` shows the SDK's own error.";
        match cause {
            Cause::Other => text.push_str(&format!("\n  {hint}")),
            _ => text.push_str(&format!(" {hint}")),
        }
    }
    anyhow::anyhow!(text)
}

fn cause<E, R>(e: &SdkError<E, R>) -> Cause
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let chain = chain_text(e);
    if from_credentials(e) {
        return Cause::NoCredentials;
    }
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().unwrap_or_default().to_string();
            let message = err.message().unwrap_or_default().to_string();
            service_cause(code, message)
        }
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => Cause::Unreachable,
        SdkError::TimeoutError(_) => Cause::Unreachable,
        _ if chain.contains("region") => Cause::NoRegion,
        _ => Cause::Other,
    }
}

fn service_cause(code: String, message: String) -> Cause {
    match code.as_str() {
        "AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation" => Cause::Denied,
        "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "InvalidAccessKeyId" => Cause::BadCredentials,
        _ => Cause::Service { code, message },
    }
}

/// Whether the credential provider chain failed (the SDK reports that as a dispatch
/// failure, with IMDS's error at the end of a long chain).
fn from_credentials(e: &(dyn StdError + 'static)) -> bool {
    let mut next: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = next {
        if err.downcast_ref::<CredentialsError>().is_some() {
            return true;
        }
        next = err.source();
    }
    false
}

fn chain_text(e: &(dyn StdError + 'static)) -> String {
    let mut text = String::new();
    let mut next: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = next {
        text.push_str(&err.to_string().to_ascii_lowercase());
        text.push('\n');
        next = err.source();
    }
    text
}

/// The one or two lines for `cause`.
pub fn message(action: &str, cause: &Cause) -> String {
    match cause {
        Cause::NoCredentials => format!(
            "{action} failed: no AWS credentials found.\n  Set AWS_PROFILE (then `aws sso login` if it is an SSO profile), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
        ),
        Cause::NoRegion => format!(
            "{action} failed: no AWS region set.\n  Set AWS_REGION (e.g. AWS_REGION=eu-west-1), or a region in your AWS_PROFILE."
        ),
        Cause::Unreachable => format!(
            "{action} failed: the AWS endpoint could not be reached.\n  Check the network, AWS_REGION, and AWS_ENDPOINT_URL if you set one."
        ),
        Cause::BadCredentials => format!(
            "{action} failed: AWS refused the credentials (unknown or expired).\n  Refresh them (`aws sso login`, or new keys), or check AWS_PROFILE points at the right account."
        ),
        Cause::Denied => format!(
            "{action} failed: access denied.\n  The identity running this needs the IAM permission {action} (see the IAM table in docs/deploying.md)."
        ),
        Cause::Service { code, message } => {
            let message = inference_core::quote(message);
            format!("{action} failed: {code}: {message}")
        }
        Cause::Other => format!("{action} failed."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_says_what_to_do_in_two_lines() {
        for cause in [
            Cause::NoCredentials,
            Cause::NoRegion,
            Cause::Unreachable,
            Cause::BadCredentials,
            Cause::Denied,
        ] {
            let text = message("lambda:CreateFunction", &cause);
            assert_eq!(text.lines().count(), 2, "{text}");
            assert!(text.starts_with("lambda:CreateFunction failed: "), "{text}");
        }
        assert!(message("lambda:GetAlias", &Cause::Denied).contains("permission lambda:GetAlias"));
        assert!(message("x", &Cause::NoCredentials).contains("aws sso login"));
    }

    #[test]
    fn service_codes_are_sorted_into_causes() {
        let c = |code: &str| service_cause(code.into(), "m".into());
        assert_eq!(c("AccessDeniedException"), Cause::Denied);
        assert_eq!(c("ExpiredTokenException"), Cause::BadCredentials);
        assert_eq!(c("UnrecognizedClientException"), Cause::BadCredentials);
        assert_eq!(
            c("ResourceConflictException"),
            Cause::Service {
                code: "ResourceConflictException".into(),
                message: "m".into()
            }
        );
        // A long service message is cut, not echoed whole.
        let long = Cause::Service {
            code: "X".into(),
            message: "y".repeat(10_000),
        };
        assert!(message("a", &long).len() < 200);
    }
}
