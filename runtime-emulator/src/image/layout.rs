//! Reading an OCI image layout: `oci-layout`, `index.json` naming one image manifest, the
//! manifest and config blobs, each checked against its digest before it is believed.

use std::path::{Path, PathBuf};

use super::spec::{self, ImageConfig, Index, Manifest, OciLayout};
use super::ImageError;

/// An image layout on disk, its manifest and config read and verified.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
    /// The manifest exactly as stored: what is pushed, and what the digest is of.
    pub manifest_bytes: Vec<u8>,
    /// `sha256:<hex>` of `manifest_bytes`: the image digest.
    pub manifest_digest: String,
    pub manifest: Manifest,
    pub config_bytes: Vec<u8>,
    pub config: ImageConfig,
}

/// A blob's bytes once they match `digest` and `size` (manifests and configs: small).
fn read_blob(dir: &Path, digest: &str, size: u64) -> Result<Vec<u8>, ImageError> {
    let path = blob_path(dir, digest)?;
    let meta = std::fs::metadata(&path).map_err(ImageError::io(&path))?;
    // Documents are kilobytes; a huge one is not ours.
    if meta.len() != size || size > 4 << 20 {
        return Err(ImageError::Invalid(format!(
            "{}: {} bytes, the descriptor says {size}",
            path.display(),
            meta.len()
        )));
    }
    let bytes = std::fs::read(&path).map_err(ImageError::io(&path))?;
    if spec::digest_of(&bytes) != digest {
        return Err(ImageError::Invalid(format!(
            "{}: contents do not match its digest; rebuild the image",
            path.display()
        )));
    }
    Ok(bytes)
}

/// `blobs/sha256/<hex>` for a well-formed digest.
pub(super) fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf, ImageError> {
    let hex = spec::sha256_hex(digest)
        .ok_or_else(|| ImageError::Invalid(format!("{digest:?} is not a sha256 digest")))?;
    Ok(dir.join("blobs/sha256").join(hex))
}

fn json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &Path) -> Result<T, ImageError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ImageError::Invalid(format!("{}: {e}", what.display())))
}

impl Layout {
    /// Opens the layout at `dir`: exactly one image manifest in its index.
    pub fn open(dir: &Path) -> Result<Layout, ImageError> {
        let marker = dir.join("oci-layout");
        let text = std::fs::read(&marker).map_err(|e| {
            ImageError::Invalid(format!(
                "{}: {e}: not an OCI image layout (build one with `cargo xtask build --image`)",
                marker.display()
            ))
        })?;
        let layout: OciLayout = json(&text, &marker)?;
        if !layout.image_layout_version.starts_with("1.") {
            return Err(ImageError::Invalid(format!(
                "{}: layout version {}, expected 1.x",
                marker.display(),
                layout.image_layout_version
            )));
        }
        let index_path = dir.join("index.json");
        let bytes = std::fs::read(&index_path).map_err(ImageError::io(&index_path))?;
        let index: Index = json(&bytes, &index_path)?;
        let [descriptor] = index.manifests.as_slice() else {
            return Err(ImageError::Invalid(format!(
                "{}: {} manifests, expected one image",
                index_path.display(),
                index.manifests.len()
            )));
        };
        if descriptor.media_type != spec::MANIFEST_MEDIA_TYPE {
            return Err(ImageError::Invalid(format!(
                "{}: the image is a {}, expected an OCI image manifest (Lambda takes no index)",
                index_path.display(),
                descriptor.media_type
            )));
        }
        let manifest_bytes = read_blob(dir, &descriptor.digest, descriptor.size)?;
        let manifest: Manifest = json(&manifest_bytes, &blob_path(dir, &descriptor.digest)?)?;
        let config_bytes = read_blob(dir, &manifest.config.digest, manifest.config.size)?;
        let config: ImageConfig = json(&config_bytes, &blob_path(dir, &manifest.config.digest)?)?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::Invalid(format!(
                "the config lists {} layers, the manifest {}",
                config.rootfs.diff_ids.len(),
                manifest.layers.len()
            )));
        }
        if let Some(l) = manifest
            .layers
            .iter()
            .find(|l| l.media_type != spec::LAYER_MEDIA_TYPE)
        {
            return Err(ImageError::Invalid(format!(
                "layer {} is {}, expected {}",
                l.digest,
                l.media_type,
                spec::LAYER_MEDIA_TYPE
            )));
        }
        Ok(Layout {
            dir: dir.to_path_buf(),
            manifest_digest: descriptor.digest.clone(),
            manifest_bytes,
            manifest,
            config_bytes,
            config,
        })
    }

    /// Where a blob of this layout is stored.
    pub fn blob(&self, digest: &str) -> Result<PathBuf, ImageError> {
        blob_path(&self.dir, digest)
    }

    /// What the layers take compressed (what a push uploads).
    pub fn compressed_size(&self) -> u64 {
        self.manifest.layers.iter().map(|l| l.size).sum()
    }
}
