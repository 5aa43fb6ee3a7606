//! `https://` sources (and `http://` on loopback only): streamed, with a progress bar,
//! timeouts and bounded retries.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

const ATTEMPTS: u32 = 3;

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
    let mut last = None;
    for attempt in 1..=ATTEMPTS {
        match try_once(&client, &url, dest) {
            Ok(n) => return Ok(n),
            Err(Failure::Final(e)) => return Err(e),
            Err(Failure::Retry(e)) => {
                if attempt < ATTEMPTS {
                    eprintln!("{e:#}; retrying ({attempt}/{ATTEMPTS})");
                    std::thread::sleep(Duration::from_millis(500 * u64::from(attempt)));
                }
                last = Some(e);
            }
        }
    }
    Err(last
        .expect("at least one attempt")
        .context(format!("{url}: gave up after {ATTEMPTS} attempts")))
}

enum Failure {
    /// Worth another try (connection trouble, 5xx, a cut-off body).
    Retry(anyhow::Error),
    /// Not going to change (404, 403, a bad URL).
    Final(anyhow::Error),
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
    let bar = match total {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner(),
    };
    bar.set_message(
        url.path()
            .rsplit('/')
            .next()
            .unwrap_or("download")
            .to_string(),
    );
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
