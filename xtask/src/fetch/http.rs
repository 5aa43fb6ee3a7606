//! `https://` sources (and `http://` on loopback only): streamed, with a progress bar,
//! timeouts and bounded retries.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::progress::progress_bar;
use super::retry::{with_retries, Failure};

/// Plain HTTP is only for servers on this machine (tests, a local mirror).
pub fn check_scheme(url: &reqwest::Url) -> Result<()> {
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
                Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                bail!("{url}: plain http:// is only allowed for loopback addresses; use https://")
            }
        }
        other => bail!("{url}: unsupported scheme {other}"),
    }
}

pub fn download(source: &str, dest: &Path) -> Result<u64> {
    let url = reqwest::Url::parse(source).with_context(|| format!("{source}: not a URL"))?;
    check_scheme(&url)?;
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(600))
        .build()
        .context("building the HTTP client")?;
    with_retries(&url, |_| try_once(&client, &url, dest))
}

fn try_once(
    client: &reqwest::blocking::Client,
    url: &reqwest::Url,
    dest: &Path,
) -> Result<u64, Failure> {
    let mut resp = client.get(url.clone()).send().map_err(|e| {
        Failure::Retry(anyhow::Error::new(e).context(format!("{url}: request failed")))
    })?;
    let status = resp.status();
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(Failure::Retry(anyhow::anyhow!("{url}: HTTP {status}")));
    }
    if !status.is_success() {
        return Err(Failure::Final(anyhow::anyhow!("{url}: HTTP {status}")));
    }
    let total = resp.content_length();
    let bar = progress_bar(total, url.path().rsplit('/').next().unwrap_or("download"));
    let mut out = std::fs::File::create(dest)
        .with_context(|| format!("cannot write {}", dest.display()))
        .map_err(Failure::Final)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut written = 0u64;
    loop {
        let n = resp.read(&mut buf).map_err(|e| {
            Failure::Retry(anyhow::Error::new(e).context(format!("{url}: reading the body")))
        })?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .with_context(|| format!("cannot write {}", dest.display()))
            .map_err(Failure::Final)?;
        written += n as u64;
        bar.set_position(written);
    }
    bar.finish_and_clear();
    if let Some(total) = total {
        if written != total {
            return Err(Failure::Retry(anyhow::anyhow!(
                "{url}: body cut off at {written} of {total} bytes"
            )));
        }
    }
    Ok(written)
}
