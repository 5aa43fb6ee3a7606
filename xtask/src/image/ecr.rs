//! ECR's side of a push: the repository (created when missing) and a registry login from
//! `GetAuthorizationToken` — base64 of `AWS:<password>`, which the registry takes as HTTP
//! Basic credentials for 12 hours.

use anyhow::{Context, Result};
use aws_sdk_ecr::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::Client;

pub async fn client() -> Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    Client::new(&shared)
}

fn api<E>(what: &str, e: SdkError<E>) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    crate::aws_error::explain(&format!("ecr:{what}"), e)
}

/// The repository's URI (`<account>.dkr.ecr.<region>.amazonaws.com/<name>`), creating the
/// repository when it does not exist (`created` says so).
pub struct Repository {
    pub uri: String,
    pub created: bool,
}

pub async fn ensure_repository(client: &Client, name: &str) -> Result<Repository> {
    match client
        .describe_repositories()
        .repository_names(name)
        .send()
        .await
    {
        Ok(out) => {
            let uri = out
                .repositories()
                .first()
                .and_then(|r| r.repository_uri())
                .context("DescribeRepositories returned no repository URI")?;
            return Ok(Repository {
                uri: uri.to_string(),
                created: false,
            });
        }
        Err(SdkError::ServiceError(e)) if e.err().is_repository_not_found_exception() => {}
        Err(e) => return Err(api("DescribeRepositories", e)),
    }
    let out = client
        .create_repository()
        .repository_name(name)
        .send()
        .await
        .map_err(|e| api("CreateRepository", e))?;
    let uri = out
        .repository()
        .and_then(|r| r.repository_uri())
        .context("CreateRepository returned no repository URI")?;
    Ok(Repository {
        uri: uri.to_string(),
        created: true,
    })
}

/// What a registry push needs from ECR.
pub struct Login {
    /// `https://<account>.dkr.ecr.<region>.amazonaws.com`.
    pub endpoint: String,
    /// `Basic <token>`.
    pub authorization: String,
}

pub async fn login(client: &Client) -> Result<Login> {
    let out = client
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| api("GetAuthorizationToken", e))?;
    let data = out
        .authorization_data()
        .first()
        .context("GetAuthorizationToken returned no authorization data")?;
    let token = data
        .authorization_token()
        .context("GetAuthorizationToken returned no token")?;
    Ok(Login {
        endpoint: data.proxy_endpoint().unwrap_or_default().to_string(),
        authorization: format!("Basic {token}"),
    })
}
