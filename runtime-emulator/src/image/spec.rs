//! The OCI image-spec documents this project writes and reads (image-spec v1.1:
//! `image-layout.md`, `manifest.md`, `config.md`, `image-index.md`), as serde structs with
//! a fixed field order: the manifest's bytes are its digest, so they must come out the same
//! every time. Only the fields an image for Lambda uses are here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The annotation naming a manifest in a layout's index (its tag).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// `oci-layout` at the layout's root.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OciLayout {
    #[serde(rename = "imageLayoutVersion")]
    pub image_layout_version: String,
}

/// A content descriptor: what a blob is, its digest (`sha256:<hex>`) and size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
}

/// `index.json`: the layout's entry point, one descriptor per image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
}

/// The image manifest: the config and the layers, applied in order. What a registry and
/// Lambda call the image digest is the SHA-256 of these exact bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// The image configuration: platform, the uncompressed layers' digests, and how to run it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageConfig {
    pub architecture: String,
    pub os: String,
    pub config: RunConfig,
    pub rootfs: RootFs,
}

/// How the image is started: Lambda runs `Entrypoint` (then `Cmd`) in `WorkingDir`, with
/// `Env` under the function's own variables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Vec<String>,
    #[serde(rename = "Cmd", default, skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    #[serde(rename = "Env", default)]
    pub env: Vec<String>,
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    /// SHA-256 of each layer's uncompressed tar, in layer order.
    pub diff_ids: Vec<String>,
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// The hex part of a `sha256:<hex>` digest, if it is one (64 lowercase hex digits: a
/// digest names a file under `blobs/sha256/`, so nothing else may pass).
pub fn sha256_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_checked_before_naming_a_file() {
        let d = digest_of(b"");
        assert_eq!(
            d,
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(sha256_hex(&d).is_some());
        assert_eq!(sha256_hex("sha256:../../etc/passwd"), None);
        assert_eq!(sha256_hex("sha512:00"), None);
        assert_eq!(sha256_hex(&d.to_uppercase()), None);
    }

    #[test]
    fn run_config_uses_the_specs_field_names() {
        let c = RunConfig {
            entrypoint: vec!["/var/task/bootstrap".into()],
            cmd: vec![],
            env: vec!["PATH=/usr/bin".into()],
            working_dir: "/var/task".into(),
        };
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"Entrypoint":["/var/task/bootstrap"],"Env":["PATH=/usr/bin"],"WorkingDir":"/var/task"}"#
        );
    }
}
