//! Pushing an image layout to a registry through the OCI distribution API (distribution-spec
//! v1.1 "Push"): blobs the registry already has are skipped (`HEAD`); others are uploaded in
//! chunks read from the layer file into one reusable buffer (`POST` a session, `PATCH` each
//! chunk, `PUT ?digest=` to close it), the next offset always taken from the `Range` the
//! registry answers; a failed chunk is resumed from the registry's own account of what it
//! has (`GET` the session), a lost session started again; then the manifest, its exact
//! bytes, by tag. Blocking `reqwest`: the rest of xtask's downloads use it.

use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use reqwest::blocking::{Client, Response};
use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{StatusCode, Url};

use super::Layout;
use crate::fetch::http::check_scheme;
use crate::fetch::progress::progress_bar;
use crate::retry::{pause, retry_after, with_attempts, Failure};
use runtime_emulator::image::spec;

/// ECR's smallest upload part (service quotas, "Layer part" 5 MiB); chunks are never
/// smaller, except a blob's last.
pub const MIN_CHUNK: usize = 5 << 20;
pub const DEFAULT_CHUNK: usize = 32 << 20;
/// Tries per chunk (and per session start) before the push gives up.
const ATTEMPTS: u32 = 5;

/// A repository in a registry, and how to authenticate to it.
pub struct Registry {
    client: Client,
    /// `https://host[:port]` (`http://` on loopback only).
    base: Url,
    repository: String,
    /// `Basic …`, sent on every request.
    authorization: Option<String>,
    chunk: usize,
}

/// What a push did.
#[derive(Debug, Default)]
pub struct Pushed {
    /// `sha256:` digests uploaded, and those the registry already had.
    pub uploaded: Vec<String>,
    pub skipped: Vec<String>,
    /// Bytes sent in blob uploads.
    pub bytes: u64,
    /// Chunks that were retried after a failure.
    pub resumed: u32,
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::RANGE_NOT_SATISFIABLE
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
}

/// The registry's error body (distribution-spec "Error Codes"), bounded.
fn describe(response: Response) -> String {
    let status = response.status();
    let body = response.text().unwrap_or_default();
    let body: String = body.chars().take(300).collect();
    format!("{status}: {}", body.trim())
}

/// `Range: 0-<last>` → the next offset.
fn next_offset(headers: &HeaderMap) -> Option<u64> {
    let range = headers.get("range")?.to_str().ok()?;
    let (_, last) = range.trim_start_matches("bytes=").split_once('-')?;
    last.trim().parse::<u64>().ok().map(|l| l + 1)
}

impl Registry {
    /// `registry`: a URL, or `host[:port]`: `https://`, except a loopback address, which is
    /// plain `http://` as Docker treats it (a local test registry has no certificate).
    pub fn new(
        registry: &str,
        repository: &str,
        authorization: Option<String>,
    ) -> Result<Registry> {
        let base = if registry.contains("://") {
            Url::parse(registry)
        } else {
            match Url::parse(&format!("http://{registry}")) {
                Ok(plain) if check_scheme(&plain).is_ok() => Ok(plain),
                _ => Url::parse(&format!("https://{registry}")),
            }
        }
        .with_context(|| format!("{registry:?} is not a registry address"))?;
        check_scheme(&base)?;
        if repository.is_empty()
            || !repository
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
        {
            bail!("repository {repository:?}: expected lowercase letters, digits, '.', '_', '-' and '/'");
        }
        let client = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(600))
            // Uploads are never redirected with their bodies.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the HTTP client")?;
        Ok(Registry {
            client,
            base,
            repository: repository.to_string(),
            authorization,
            chunk: DEFAULT_CHUNK.max(MIN_CHUNK),
        })
    }

    fn url(&self, tail: &str) -> Result<Url> {
        Ok(self.base.join(&format!("/v2/{}/{tail}", self.repository))?)
    }

    fn send(&self, request: reqwest::blocking::RequestBuilder) -> Result<Response, Failure> {
        let request = match &self.authorization {
            Some(a) => request.header(AUTHORIZATION, a),
            None => request,
        };
        let response = request
            .send()
            .map_err(|e| Failure::retry(anyhow!("{}: {e}", self.base)))?;
        match response.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Failure::Final(anyhow!(
                "the registry {} refused the credentials for {} ({}); for ECR check `ecr:GetAuthorizationToken` and the push permissions on the repository",
                self.base,
                self.repository,
                describe(response)
            ))),
            s if retryable(s) => {
                let after = retry_after(response.headers());
                Err(Failure::Retry {
                    error: anyhow!("{}", describe(response)),
                    after,
                })
            }
            _ => Ok(response),
        }
    }

    /// Retries a whole step that can simply be repeated.
    fn again<T>(&self, what: &str, mut step: impl FnMut() -> Result<T, Failure>) -> Result<T> {
        with_attempts(&what, ATTEMPTS, |_| {
            step().map_err(|f| match f {
                Failure::Final(e) => Failure::Final(e.context(what.to_string())),
                retry => retry,
            })
        })
    }

    /// Whether the repository already has the blob.
    fn has_blob(&self, digest: &str) -> Result<bool> {
        let url = self.url(&format!("blobs/{digest}"))?;
        self.again(&format!("HEAD {url}"), || {
            let r = self.send(self.client.head(url.clone()))?;
            match r.status() {
                StatusCode::OK => Ok(true),
                StatusCode::NOT_FOUND => Ok(false),
                _ => Err(Failure::Final(anyhow!("{}", describe(r)))),
            }
        })
    }

    /// `POST …/blobs/uploads/`: a session's location, and the least chunk it accepts.
    fn start(&self) -> Result<(Url, usize)> {
        let url = self.url("blobs/uploads/")?;
        self.again(&format!("POST {url}"), || {
            let r = self.send(self.client.post(url.clone()).header(CONTENT_LENGTH, 0))?;
            if r.status() != StatusCode::ACCEPTED {
                return Err(Failure::Final(anyhow!("{}", describe(r))));
            }
            let location = self.location(r.headers()).map_err(Failure::Final)?;
            let min = r
                .headers()
                .get("oci-chunk-min-length")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(0);
            Ok((location, min))
        })
    }

    /// The session URL a response names (relative ones against the registry).
    fn location(&self, headers: &HeaderMap) -> Result<Url> {
        let value = headers
            .get(LOCATION)
            .context("the registry gave no Location for the upload")?
            .to_str()
            .context("the upload's Location is not text")?;
        let url = self.base.join(value)?;
        if url.origin() != self.base.origin() {
            bail!("the registry sent the upload to another host ({url}); refused");
        }
        Ok(url)
    }

    /// `GET` the session: where the registry's copy ends (after a failed chunk).
    fn uploaded_so_far(&self, location: &Url) -> Result<u64, Failure> {
        let r = self.send(self.client.get(location.clone()))?;
        match r.status() {
            StatusCode::NO_CONTENT => Ok(next_offset(r.headers()).unwrap_or(0)),
            StatusCode::NOT_FOUND => Err(Failure::Final(anyhow!("the upload session is gone"))),
            _ => Err(Failure::retry(anyhow!("{}", describe(r)))),
        }
    }

    /// Uploads one blob from its file in the layout.
    fn upload(&self, layout: &Layout, digest: &str, size: u64, pushed: &mut Pushed) -> Result<()> {
        let path = layout.blob(digest)?;
        let mut file = std::fs::File::open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let bar = progress_bar(Some(size), &digest[..19]);
        let mut restarts = 0;
        'session: loop {
            let (mut location, min) = self.start()?;
            let chunk = self.chunk.max(min);
            let mut buf = vec![0u8; chunk.min(size as usize).max(1)];
            let mut offset = 0u64;
            let mut failures = 0;
            while offset < size {
                let len = (size - offset).min(buf.len() as u64) as usize;
                file.seek(SeekFrom::Start(offset))?;
                file.read_exact(&mut buf[..len])
                    .with_context(|| format!("reading {}", path.display()))?;
                let sent = self.send(
                    self.client
                        .patch(location.clone())
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(
                            "content-range",
                            format!("{offset}-{}", offset + len as u64 - 1),
                        )
                        .header(CONTENT_LENGTH, len)
                        .body(buf[..len].to_vec()),
                );
                let failure = match sent {
                    Ok(r) if r.status() == StatusCode::ACCEPTED => {
                        location = self.location(r.headers())?;
                        // The registry's count, not ours: what it says it holds is what it has.
                        let next = next_offset(r.headers()).unwrap_or(offset + len as u64);
                        if next <= offset {
                            Failure::retry(anyhow!(
                                "the registry kept none of the chunk at {offset}"
                            ))
                        } else {
                            pushed.bytes += next - offset;
                            offset = next;
                            bar.set_position(offset);
                            failures = 0;
                            continue;
                        }
                    }
                    Ok(r) if r.status() == StatusCode::NOT_FOUND => {
                        Failure::Final(anyhow!("the upload session is gone ({})", describe(r)))
                    }
                    Ok(r) => Failure::Final(anyhow!("{}", describe(r))),
                    Err(f) => f,
                };
                match failure {
                    Failure::Retry { error, after } if failures + 1 < ATTEMPTS => {
                        failures += 1;
                        pushed.resumed += 1;
                        eprintln!("uploading {digest} at byte {offset}: {error:#}; resuming ({failures}/{ATTEMPTS})");
                        pause(failures, after);
                        match self.uploaded_so_far(&location) {
                            Ok(at) => offset = at,
                            Err(Failure::Retry { .. }) => {}
                            Err(Failure::Final(_)) if restarts < 2 => {
                                restarts += 1;
                                continue 'session;
                            }
                            Err(Failure::Final(e)) => return Err(e),
                        }
                    }
                    Failure::Final(e)
                        if restarts < 2 && e.to_string().contains("session is gone") =>
                    {
                        restarts += 1;
                        eprintln!("uploading {digest}: {e:#}; starting it again");
                        continue 'session;
                    }
                    Failure::Retry { error: e, .. } | Failure::Final(e) => {
                        return Err(e.context(format!(
                            "uploading {digest} ({size} bytes) at byte {offset}"
                        )))
                    }
                }
            }
            let mut close = location.clone();
            close.query_pairs_mut().append_pair("digest", digest);
            let r = self
                .send(self.client.put(close).header(CONTENT_LENGTH, 0))
                .map_err(|f| match f {
                    Failure::Retry { error: e, .. } | Failure::Final(e) => e,
                })
                .with_context(|| format!("completing the upload of {digest}"))?;
            if r.status() != StatusCode::CREATED {
                bail!("completing the upload of {digest}: {}", describe(r));
            }
            if let Some(d) = r.headers().get("docker-content-digest") {
                if d.to_str().ok() != Some(digest) {
                    bail!("the registry stored {digest} as {d:?}: the upload was corrupted; push again");
                }
            }
            bar.finish_and_clear();
            return Ok(());
        }
    }

    /// Pushes the layout's blobs and its manifest under `tag`.
    pub fn push(&self, layout: &Layout, tag: &str) -> Result<Pushed> {
        let mut pushed = Pushed::default();
        let manifest = &layout.manifest;
        for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
            if self.has_blob(&d.digest)? {
                pushed.skipped.push(d.digest.clone());
            } else {
                eprintln!("uploading {} ({} bytes)", d.digest, d.size);
                self.upload(layout, &d.digest, d.size, &mut pushed)?;
                pushed.uploaded.push(d.digest.clone());
            }
        }
        let url = self.url(&format!("manifests/{tag}"))?;
        let r = self.again(&format!("PUT {url}"), || {
            let r = self.send(
                self.client
                    .put(url.clone())
                    .header(CONTENT_TYPE, spec::MANIFEST_MEDIA_TYPE)
                    .body(layout.manifest_bytes.clone()),
            )?;
            if r.status() != StatusCode::CREATED {
                return Err(Failure::Final(anyhow!("{}", describe(r))));
            }
            Ok(r)
        })?;
        if let Some(d) = r.headers().get("docker-content-digest") {
            if d.to_str().ok() != Some(layout.manifest_digest.as_str()) {
                bail!(
                    "the registry stored the manifest as {d:?}, not {}: it was re-encoded; Lambda would run another digest",
                    layout.manifest_digest
                );
            }
        }
        Ok(pushed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_addresses() {
        let mut h = HeaderMap::new();
        h.insert("range", "0-65".parse().unwrap());
        assert_eq!(next_offset(&h), Some(66));
        h.insert("range", "bytes=0-0".parse().unwrap());
        assert_eq!(next_offset(&h), Some(1));
        assert!(
            Registry::new("http://10.0.0.1:5000", "r", None).is_err(),
            "plain http off loopback"
        );
        assert!(Registry::new("127.0.0.1:5000", "Bad Name", None).is_err());
        let r = Registry::new(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "models/fn",
            None,
        )
        .unwrap();
        assert_eq!(
            r.url("blobs/uploads/").unwrap().as_str(),
            "https://123456789012.dkr.ecr.us-east-1.amazonaws.com/v2/models/fn/blobs/uploads/"
        );
        for (given, base) in [
            ("127.0.0.1:5000", "http://127.0.0.1:5000/"),
            ("localhost:5000", "http://localhost:5000/"),
            ("[::1]:5000", "http://[::1]:5000/"),
            (
                "registry.example.com:5000",
                "https://registry.example.com:5000/",
            ),
            ("https://127.0.0.1:5000", "https://127.0.0.1:5000/"),
        ] {
            let r = Registry::new(given, "r", None).unwrap();
            assert_eq!(r.base.as_str(), base, "{given}");
        }
    }
}
