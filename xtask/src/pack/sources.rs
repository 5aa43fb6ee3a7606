//! Where a model's bytes come from: the cache when its hash is known, else its sources in
//! order; and its external data files, each named in the manifest and pinned in the lock.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use inference_core::prepare::{self};
use model_lock::ModelEntry;

use super::manifest::{Manifest, ModelSpec};
use super::PackArgs;
use crate::cache::Cache;
use crate::fetch::{self, Fetched, Source};

/// The source bytes and their hash: from the cache when the expected hash is known and
/// cached (no network), otherwise from the first source that works, in order.
pub(super) fn fetch_source(
    manifest: &Manifest,
    label: &str,
    sources: &[String],
    expected: Option<&str>,
    cache: &Cache,
    cap: fetch::Cap,
) -> Result<Fetched> {
    if let Some(sha) = expected {
        if let Some(bytes) = cache.get(sha) {
            eprintln!(
                "{label}: source {} from the cache",
                model_lock::short_hash(sha)
            );
            return Ok(Fetched {
                bytes,
                sha256: sha.to_ascii_lowercase(),
            });
        }
    }
    let mut failures = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let result = match Source::parse(source, &manifest.dir) {
            Source::Remote(url) => cache.fetch(expected, |tmp| fetch::download(url, tmp, cap)),
            Source::Local(path) => fetch::read_local_verified(&path, expected),
        };
        match result {
            Ok(found) => return Ok(found),
            Err(e) => {
                // Said now, so a mirror that silently rots is noticed even when the next works.
                let next = if i + 1 < sources.len() {
                    ", trying the next source"
                } else {
                    ""
                };
                eprintln!("{label}: {source} failed{next}: {e:#}");
                failures.push(format!("  {source}: {e:#}"))
            }
        }
    }
    bail!("no source could be fetched:\n{}", failures.join("\n"))
}

/// An ONNX model's external data files, by `location`, and their hashes (for the lock).
pub(super) struct ExternalData {
    pub(super) files: BTreeMap<String, Vec<u8>>,
    pub(super) sha256: BTreeMap<String, String>,
}

/// The external data files the model's tensors point at, fetched (and pinned) as the
/// manifest's `external_data` says; a file the model needs and the manifest does not name
/// (or the other way round) is an error that shows what to write.
pub(super) fn fetch_external_data(
    manifest: &Manifest,
    spec: &ModelSpec,
    model: &[u8],
    old: Option<&ModelEntry>,
    args: &PackArgs,
    cache: &Cache,
) -> Result<ExternalData> {
    let needed = prepare::external_data_locations(model)?;
    if let Some(missing) = needed
        .iter()
        .find(|l| !spec.external_data.iter().any(|e| &e.location == *l))
    {
        bail!(
            "the model keeps weights in external data {missing:?} (it references {needed:?}); name each file in the manifest:\n  external_data = [{}]",
            needed
                .iter()
                .map(|l| format!("{{ location = {l:?}, sources = [\"…/{l}\"] }}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut fetched = ExternalData {
        files: BTreeMap::new(),
        sha256: BTreeMap::new(),
    };
    for e in &spec.external_data {
        if !needed.contains(&e.location) {
            bail!(
                "external_data names {:?}, which the model does not reference (it references {needed:?})",
                e.location
            );
        }
        let recorded = old
            .and_then(|o| o.external_data_sha256.get(&e.location))
            .map(String::as_str)
            .filter(|_| !args.update);
        let label = format!("{} external data {}", spec.name, e.location);
        let file = fetch_source(
            manifest,
            &label,
            &e.sources,
            e.sha256.as_deref().or(recorded),
            cache,
            fetch::Cap::mb(args.max_download_mb),
        )?;
        fetched.files.insert(e.location.clone(), file.bytes);
        fetched.sha256.insert(e.location.clone(), file.sha256);
    }
    Ok(fetched)
}
