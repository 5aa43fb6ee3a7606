//! `https://` sources (and `http://` on loopback only): streamed, with a progress bar,
//! timeouts and bounded retries.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::progress::progress_bar;
use super::Cap;
use crate::retry::{with_retries, Failure};

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

/// Redirects are followed (hubs redirect to CDNs) only to URLs the source itself could
/// have been: an https:// source can never be downgraded to plain http.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= 10 {
            return attempt.error("more than 10 redirects");
        }
        match check_scheme(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(e) => {
                let message = format!("refused a redirect: {e:#}");
                attempt.error(message)
            }
        }
    })
}

pub fn download(source: &str, dest: &Path, cap: Cap) -> Result<u64> {
    let url = reqwest::Url::parse(source).with_context(|| format!("{source}: not a URL"))?;
    check_scheme(&url)?;
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(600))
        .redirect(redirect_policy())
        .build()
        .context("building the HTTP client")?;
    with_retries(&url, |_| try_once(&client, &url, dest, cap))
}

fn try_once(
    client: &reqwest::blocking::Client,
    url: &reqwest::Url,
    dest: &Path,
    cap: Cap,
) -> Result<u64, Failure> {
    let mut resp = client.get(url.clone()).send().map_err(|e| {
        let failure = if e.is_redirect() {
            Failure::Final
        } else {
            Failure::retry
        };
        failure(anyhow::Error::new(e).context(format!("{url}: request failed")))
    })?;
    let status = resp.status();
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(Failure::Retry {
            error: anyhow::anyhow!("{url}: HTTP {status}"),
            after: crate::retry::retry_after(resp.headers()),
        });
    }
    if !status.is_success() {
        return Err(Failure::Final(anyhow::anyhow!("{url}: HTTP {status}")));
    }
    let total = resp.content_length();
    cap.check(url.as_str(), total.unwrap_or(0))
        .map_err(Failure::Final)?;
    let bar = progress_bar(total, url.path().rsplit('/').next().unwrap_or("download"));
    let mut out = std::fs::File::create(dest)
        .with_context(|| format!("cannot write {}", dest.display()))
        .map_err(Failure::Final)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut written = 0u64;
    loop {
        let n = resp.read(&mut buf).map_err(|e| {
            Failure::retry(anyhow::Error::new(e).context(format!("{url}: reading the body")))
        })?;
        if n == 0 {
            break;
        }
        cap.check(url.as_str(), written + n as u64)
            .map_err(Failure::Final)?;
        out.write_all(&buf[..n])
            .with_context(|| format!("cannot write {}", dest.display()))
            .map_err(Failure::Final)?;
        written += n as u64;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead as _, BufReader};
    use std::net::TcpListener;

    /// A loopback server answering every request with `response`.
    fn serve(response: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let _ = (&stream).write_all(response.as_bytes());
            }
        });
        format!("http://{addr}/m.onnx")
    }

    #[test]
    fn a_redirect_may_not_leave_what_the_source_is_allowed_to_be() {
        let url = serve("HTTP/1.1 302 Found\r\nLocation: http://example.com/m.onnx\r\nContent-Length: 0\r\n\r\n");
        let dir = tempfile::tempdir().unwrap();
        let e = download(&url, &dir.path().join("m"), Cap::mb(1)).unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("refused a redirect") && e.contains("only allowed for loopback"),
            "{e}"
        );
    }

    #[test]
    fn downloads_over_the_cap_stop_before_the_body() {
        let url = serve("HTTP/1.1 200 OK\r\nContent-Length: 3000000\r\n\r\n");
        let dir = tempfile::tempdir().unwrap();
        let e = format!(
            "{:#}",
            download(&url, &dir.path().join("m"), Cap::mb(1)).unwrap_err()
        );
        assert!(
            e.contains("1 MB download limit") && e.contains("--max-download-mb"),
            "{e}"
        );
    }
}
