//! `s3://bucket/key` sources through aws-sdk-s3: the default credential chain and region,
//! `AWS_ENDPOINT_URL` honoured (an S3-compatible store, or the tests' local server).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::get_object::GetObjectError;

use super::progress::progress_bar;
use super::Cap;
use crate::retry::{with_retries, Failure};

/// An S3 client from the environment, shared with the function's fallback (path-style
/// addressing for a custom endpoint).
pub async fn client() -> aws_sdk_s3::Client {
    inference_core::fallback::s3::client(Duration::from_secs(10), Duration::from_secs(60)).await
}

/// Downloads `s3://bucket/key` into `dest`. Returns the byte count.
pub fn download(bucket: &str, key: &str, dest: &Path, cap: Cap) -> Result<u64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime for S3")?;
    let url = format!("s3://{bucket}/{key}");
    let client = rt.block_on(client());
    // The SDK retries the request itself; this loop also covers a body cut off mid-way.
    with_retries(&url, |_| {
        rt.block_on(try_once(&client, bucket, key, &url, dest, cap))
    })
}

async fn try_once(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    url: &str,
    dest: &Path,
    cap: Cap,
) -> Result<u64, Failure> {
    let mut obj = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| classify(url, e))?;
    let total = obj.content_length().and_then(|n| u64::try_from(n).ok());
    cap.check(url, total.unwrap_or(0)).map_err(Failure::Final)?;
    let bar = progress_bar(total, key.rsplit('/').next().unwrap_or(key));
    let mut out = std::fs::File::create(dest)
        .with_context(|| format!("cannot write {}", dest.display()))
        .map_err(Failure::Final)?;
    let mut written = 0u64;
    while let Some(chunk) = obj.body.try_next().await.map_err(|e| {
        Failure::retry(anyhow::Error::new(e).context(format!("{url}: reading the body")))
    })? {
        written += chunk.len() as u64;
        cap.check(url, written).map_err(Failure::Final)?;
        out.write_all(&chunk)
            .with_context(|| format!("cannot write {}", dest.display()))
            .map_err(Failure::Final)?;
        bar.set_position(written);
    }
    bar.finish_and_clear();
    if let Some(total) = total {
        if written != total {
            return Err(Failure::retry(anyhow::anyhow!(
                "{url}: body cut off at {written} of {total} bytes"
            )));
        }
    }
    Ok(written)
}

/// Missing objects and denied access will not change on a retry; the rest might.
fn classify(url: &str, e: SdkError<GetObjectError>) -> Failure {
    let status = e.raw_response().map(|r| r.status().as_u16());
    let final_ = matches!(&e, SdkError::ServiceError(se) if se.err().is_no_such_key())
        || matches!(status, Some(400..=499) if status != Some(429))
        || matches!(e, SdkError::ConstructionFailure(_));
    let err = crate::aws_error::explain(&format!("s3:GetObject on {url}"), e);
    if final_ {
        Failure::Final(err)
    } else {
        Failure::retry(err)
    }
}
