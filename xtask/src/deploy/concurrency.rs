//! `--reserved-concurrency` (the function's share of the account's concurrency, which is
//! also its ceiling) and `--provisioned-concurrency` (execution environments Lambda keeps
//! initialized on the alias, so the requests they take never see a cold start), waited for
//! until Lambda says they are ready.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use aws_sdk_lambda::types::ProvisionedConcurrencyStatusEnum as Status;
use aws_sdk_lambda::Client;

use super::lambda::api;

/// Allocation usually takes a minute or two; Lambda gives up on it well before this.
const READY_WITHIN: Duration = Duration::from_secs(15 * 60);
const POLL: Duration = Duration::from_secs(5);

pub async fn reserve(client: &Client, function: &str, n: i32) -> Result<()> {
    client
        .put_function_concurrency()
        .function_name(function)
        .reserved_concurrent_executions(n)
        .send()
        .await
        .map_err(|e| api("PutFunctionConcurrency", e))?;
    Ok(())
}

/// Where a provisioned-concurrency allocation stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Provisioned {
    pub requested: i32,
    pub allocated: i32,
    pub status: String,
}

/// Asks for `n` environments on the alias and waits until they are ready (printing
/// progress), or fails with Lambda's reason.
pub async fn provision(
    client: &Client,
    function: &str,
    alias: &str,
    n: i32,
) -> Result<Provisioned> {
    client
        .put_provisioned_concurrency_config()
        .function_name(function)
        .qualifier(alias)
        .provisioned_concurrent_executions(n)
        .send()
        .await
        .map_err(|e| api("PutProvisionedConcurrencyConfig", e))?;
    let deadline = Instant::now() + READY_WITHIN;
    let mut last = None;
    loop {
        let out = client
            .get_provisioned_concurrency_config()
            .function_name(function)
            .qualifier(alias)
            .send()
            .await
            .map_err(|e| api("GetProvisionedConcurrencyConfig", e))?;
        let now = Provisioned {
            requested: out.requested_provisioned_concurrent_executions.unwrap_or(n),
            allocated: out.allocated_provisioned_concurrent_executions.unwrap_or(0),
            status: out
                .status
                .as_ref()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
        };
        match out.status {
            Some(Status::Ready) => return Ok(now),
            Some(Status::Failed) => bail!(
                "provisioned concurrency on {function}:{alias} failed: {} (check the account's unreserved concurrency and the function's reserved concurrency)",
                out.status_reason.as_deref().unwrap_or("Lambda gave no reason")
            ),
            _ => {}
        }
        if last.as_ref() != Some(&now) {
            println!(
                "  provisioned concurrency: {} of {} ready ({})",
                now.allocated, now.requested, now.status
            );
            last = Some(now);
        }
        if Instant::now() > deadline {
            bail!("provisioned concurrency on {function}:{alias} was not ready within 15 minutes: its status is still shown by `aws lambda get-provisioned-concurrency-config --function-name {function} --qualifier {alias}`");
        }
        tokio::time::sleep(POLL).await;
    }
}
