//! The Lambda API calls: create or update the function (waiting for each change to
//! settle), publish a version, point the alias at it (or route a canary share to it).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    AliasRoutingConfiguration, Architecture, Environment, FileSystemConfig, FunctionCode,
    LastUpdateStatus, PackageType, Runtime, State, TracingConfig, TracingMode, VpcConfig,
};
use aws_sdk_lambda::Client;

use super::config::{Settings, Tracing};
use crate::build::package::Arch;

/// Where the code comes from: the zip itself, an object already uploaded to S3, or an
/// image already pushed to ECR (`<repository uri>@sha256:<digest>`).
pub enum Code {
    Zip(Vec<u8>),
    S3 { bucket: String, key: String },
    Image { uri: String },
}

pub async fn client() -> Client {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(120))
        .build();
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await;
    Client::new(&shared)
}

/// A failed call as a person can act on it; `what` is the API name (its IAM action is
/// `lambda:<what>`).
pub(super) fn api<E>(what: &str, e: SdkError<E>) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    crate::aws_error::explain(&format!("lambda:{what}"), e)
}

/// The function as it is now, or `None` if it does not exist.
pub async fn current(
    client: &Client,
    name: &str,
) -> Result<Option<aws_sdk_lambda::types::FunctionConfiguration>> {
    match client.get_function().function_name(name).send().await {
        Ok(out) => Ok(out.configuration),
        Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => Ok(None),
        Err(e) => Err(api("GetFunction", e)),
    }
}

/// The alias's (version, canary weights), or `None` if it does not exist.
pub async fn alias(
    client: &Client,
    function: &str,
    alias: &str,
) -> Result<Option<(String, HashMap<String, f64>)>> {
    match client
        .get_alias()
        .function_name(function)
        .name(alias)
        .send()
        .await
    {
        Ok(out) => Ok(Some((
            out.function_version.unwrap_or_default(),
            out.routing_config
                .and_then(|r| r.additional_version_weights)
                .unwrap_or_default(),
        ))),
        Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => Ok(None),
        Err(e) => Err(api("GetAlias", e)),
    }
}

fn architecture(arch: Arch) -> Architecture {
    match arch {
        Arch::X86_64 => Architecture::X8664,
        Arch::Arm64 => Architecture::Arm64,
    }
}

fn environment(s: &Settings) -> Environment {
    Environment::builder()
        .set_variables(Some(s.environment.clone().into_iter().collect()))
        .build()
}

fn file_systems(s: &Settings) -> Result<Vec<FileSystemConfig>> {
    s.efs
        .iter()
        .map(|e| {
            FileSystemConfig::builder()
                .arn(&e.access_point_arn)
                .local_mount_path(&e.mount_path)
                .build()
                .context("EFS settings")
        })
        .collect()
}

fn vpc(s: &Settings) -> Option<VpcConfig> {
    s.vpc.as_ref().map(|v| {
        VpcConfig::builder()
            .set_subnet_ids(Some(v.subnet_ids.clone()))
            .set_security_group_ids(Some(v.security_group_ids.clone()))
            .build()
    })
}

/// The tracing setting, when one is asked for (else the function keeps its own).
fn tracing(s: &Settings) -> Option<TracingConfig> {
    s.tracing.map(|t| {
        let mode = match t {
            Tracing::Active => TracingMode::Active,
            Tracing::PassThrough => TracingMode::PassThrough,
        };
        TracingConfig::builder().mode(mode).build()
    })
}

/// Creates the function; the CodeSha256 Lambda computed for its code.
pub async fn create(client: &Client, s: &Settings, code: Code) -> Result<String> {
    let role = s.role.as_deref().context(
        "the function does not exist yet: creating it needs an execution role (--role ARN or role in deploy.toml)",
    )?;
    let call = client.create_function();
    let (call, code) = match code {
        Code::Zip(bytes) => (
            call.runtime(Runtime::Providedal2023).handler("bootstrap"),
            FunctionCode::builder().zip_file(Blob::new(bytes)).build(),
        ),
        Code::S3 { bucket, key } => (
            call.runtime(Runtime::Providedal2023).handler("bootstrap"),
            FunctionCode::builder()
                .s3_bucket(bucket)
                .s3_key(key)
                .build(),
        ),
        // The image's config says what to run: no runtime or handler.
        Code::Image { uri } => (
            call.package_type(PackageType::Image),
            FunctionCode::builder().image_uri(uri).build(),
        ),
    };
    let out = call
        .function_name(&s.function)
        .role(role)
        .architectures(architecture(s.arch))
        .memory_size(s.memory)
        .timeout(s.timeout)
        .environment(environment(s))
        .set_file_system_configs(Some(file_systems(s)?).filter(|v| !v.is_empty()))
        .set_vpc_config(vpc(s))
        .set_tracing_config(tracing(s))
        .code(code)
        .send()
        .await
        .map_err(|e| api("CreateFunction", e))?;
    wait_settled(client, &s.function).await?;
    out.code_sha256
        .context("CreateFunction returned no CodeSha256")
}

/// Updates the function's code and configuration; the CodeSha256 Lambda computed.
pub async fn update(client: &Client, s: &Settings, code: Code) -> Result<String> {
    let call = client
        .update_function_code()
        .function_name(&s.function)
        .architectures(architecture(s.arch));
    let call = match code {
        Code::Zip(bytes) => call.zip_file(Blob::new(bytes)),
        Code::S3 { bucket, key } => call.s3_bucket(bucket).s3_key(key),
        Code::Image { uri } => call.image_uri(uri),
    };
    let out = call
        .send()
        .await
        .map_err(|e| api("UpdateFunctionCode", e))?;
    let code_sha256 = out
        .code_sha256
        .context("UpdateFunctionCode returned no CodeSha256")?;
    // A configuration update while the code update runs is rejected (ResourceConflict).
    wait_settled(client, &s.function).await?;
    client
        .update_function_configuration()
        .function_name(&s.function)
        .set_role(s.role.clone())
        .memory_size(s.memory)
        .timeout(s.timeout)
        .environment(environment(s))
        .set_file_system_configs(Some(file_systems(s)?))
        .set_vpc_config(vpc(s))
        .set_tracing_config(tracing(s))
        .send()
        .await
        .map_err(|e| api("UpdateFunctionConfiguration", e))?;
    wait_settled(client, &s.function).await?;
    Ok(code_sha256)
}

/// Polls until the function is Active and its last update is no longer in progress (an
/// image is optimised by Lambda first: minutes for big ones).
async fn wait_settled(client: &Client, name: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let c = client
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .map_err(|e| api("GetFunctionConfiguration", e))?;
        let reason = c.last_update_status_reason.clone().unwrap_or_default();
        match (c.state, c.last_update_status) {
            (Some(State::Failed), _) => bail!("the function is in state Failed: {reason}"),
            (_, Some(LastUpdateStatus::Failed)) => bail!("the update failed: {reason}"),
            (Some(State::Pending), _) | (_, Some(LastUpdateStatus::InProgress)) => {}
            _ => return Ok(()),
        }
        if Instant::now() > deadline {
            bail!("the function did not settle within 15 minutes; see its state with `aws lambda get-function-configuration --function-name {name}`");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Publishes the current code as a version; fails if Lambda holds other code than
/// `code_sha256` (someone deployed in between).
pub async fn publish(
    client: &Client,
    name: &str,
    code_sha256: &str,
    description: &str,
) -> Result<(String, String)> {
    let out = client
        .publish_version()
        .function_name(name)
        .code_sha256(code_sha256)
        .description(description)
        .send()
        .await
        .map_err(|e| api("PublishVersion", e))?;
    Ok((
        out.version.context("PublishVersion returned no version")?,
        out.function_arn.unwrap_or_default(),
    ))
}

fn routing(weights: HashMap<String, f64>) -> AliasRoutingConfiguration {
    AliasRoutingConfiguration::builder()
        .set_additional_version_weights(Some(weights))
        .build()
}

/// Points the alias at `version`, or with a canary weight keeps it on its current version
/// and sends that share of traffic to `version`.
pub async fn point_alias(
    client: &Client,
    function: &str,
    name: &str,
    version: &str,
    canary: Option<f64>,
) -> Result<String> {
    let existing = alias(client, function, name).await?;
    let (primary, weights) = match (&existing, canary) {
        (Some((current, _)), Some(w)) => {
            (current.clone(), HashMap::from([(version.to_string(), w)]))
        }
        // A first deploy has nothing to be a canary against.
        _ => (version.to_string(), HashMap::new()),
    };
    if existing.is_none() {
        client
            .create_alias()
            .function_name(function)
            .name(name)
            .function_version(&primary)
            .routing_config(routing(weights))
            .send()
            .await
            .map_err(|e| api("CreateAlias", e))?;
    } else {
        client
            .update_alias()
            .function_name(function)
            .name(name)
            .function_version(&primary)
            .routing_config(routing(weights))
            .send()
            .await
            .map_err(|e| api("UpdateAlias", e))?;
    }
    Ok(primary)
}

/// Moves the alias fully to the version its canary routes to.
pub async fn promote(client: &Client, function: &str, name: &str) -> Result<String> {
    let (current, weights) = alias(client, function, name)
        .await?
        .with_context(|| format!("alias {name:?} of {function:?} does not exist"))?;
    let Some(canary) = weights.keys().next().cloned() else {
        bail!(
            "alias {name:?} routes everything to version {current}: there is no canary to promote"
        );
    };
    client
        .update_alias()
        .function_name(function)
        .name(name)
        .function_version(&canary)
        .routing_config(routing(HashMap::new()))
        .send()
        .await
        .map_err(|e| api("UpdateAlias", e))?;
    Ok(canary)
}
