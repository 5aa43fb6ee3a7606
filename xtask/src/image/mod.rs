//! `cargo xtask build --image`: the function as an OCI image layout
//! (`target/lambda/image/`), with no Docker daemon — `bootstrap` and what it links against
//! in one layer, each `artifact = "image"` model in a layer of its own (a code change then
//! re-uploads megabytes, not the models), a config starting `/var/task/bootstrap`.
//! Reproducible: the same binary and packed models give the same manifest digest.
//! `deploy --image` pushes it ([`registry`], [`ecr`]); `local --image` runs it (the
//! emulator's `image` module).

pub mod choice;
pub mod ecr;
mod elf;
mod layer;
pub mod registry;
mod rootfs;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use model_lock::LockFile;
use runtime_emulator::image::spec::{
    self, Descriptor, ImageConfig, Index, Manifest, OciLayout, Platform, RootFs, RunConfig,
};

use crate::build::package::{mb, Arch};

pub use runtime_emulator::image::Layout;

/// Lambda's limit on an image, uncompressed, all layers.
pub const MAX_IMAGE: u64 = 10 << 30;
/// The tar headers' time when `SOURCE_DATE_EPOCH` is unset: 1980-01-01, the zip's date.
const DEFAULT_EPOCH: u64 = 315_532_800;
/// The gzip level of model layers. Weights compress little, and level 1 (zlib-rs's quick
/// strategy: fixed Huffman codes, no stored blocks) made a 281.6 MB fp32 table 5.6 % bigger;
/// level 2 made it 7.5 % smaller, in 1.5x the time.
const MODEL_LEVEL: u32 = 2;
/// The tag the layout's index gives the image.
const TAG: &str = "latest";

/// A written layout and what it holds.
#[derive(Debug)]
pub struct Image {
    pub layout: Layout,
    /// Uncompressed, all layers (what Lambda's 10 GB limit counts).
    pub uncompressed: u64,
    pub compressed: u64,
}

impl Image {
    pub fn digest(&self) -> &str {
        &self.layout.manifest_digest
    }
}

/// OCI's name for the architecture.
fn oci_arch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "amd64",
        Arch::Arm64 => "arm64",
    }
}

fn epoch() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={v:?}: expected seconds since 1970")),
        Err(_) => Ok(DEFAULT_EPOCH),
    }
}

/// Writes a JSON document as a blob; its descriptor.
fn json_blob<T: serde::Serialize>(
    blobs: &Path,
    media_type: &str,
    value: &T,
) -> Result<(Descriptor, Vec<u8>)> {
    let bytes = serde_json::to_vec(value)?;
    let digest = spec::digest_of(&bytes);
    std::fs::write(blobs.join(&digest[7..]), &bytes)
        .with_context(|| format!("cannot write into {}", blobs.display()))?;
    Ok((
        Descriptor {
            media_type: media_type.into(),
            digest,
            size: bytes.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        },
        bytes,
    ))
}

/// Builds the layout for `bootstrap` (checked for `arch`) and the lock's image models from
/// `packed`, into `out`: written beside it and renamed into place, so `out` is always a
/// whole image.
pub fn build(
    bootstrap: &Path,
    arch: Arch,
    lock: Option<&LockFile>,
    packed: &Path,
    out: &Path,
) -> Result<Image> {
    let contents = rootfs::contents(bootstrap, arch, lock, packed)?;
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    if out.exists() && !out.join("oci-layout").is_file() {
        bail!(
            "{} exists and is not an image layout; not replacing it (choose another --image-out)",
            out.display()
        );
    }
    let tmp = tempfile::Builder::new()
        .prefix(".image-")
        .tempdir_in(parent)
        .with_context(|| {
            format!(
                "cannot create a temporary directory in {}",
                parent.display()
            )
        })?;
    let blobs = tmp.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let mtime = epoch()?;

    let mut layers =
        vec![layer::write(&contents.code, 6, mtime, &blobs).context("writing the code layer")?];
    // The image this build replaces: its model layers are taken as they are when their
    // inputs (the model's hash, path, mode, time, level) are the same.
    let previous = Layout::open(out).ok();
    for m in &contents.models {
        let inputs = layer::inputs_of(&m.tree, MODEL_LEVEL, mtime);
        let reused = previous
            .as_ref()
            .zip(inputs.as_deref())
            .and_then(|(p, inputs)| layer::reuse(p, inputs, &blobs));
        if let Some(blob) = reused {
            eprintln!(
                "the layer of model {} is unchanged: taken from the previous image",
                m.name
            );
            layers.push(blob);
            continue;
        }
        eprintln!("writing the layer of model {} ({})", m.name, mb(m.size));
        layers.push(
            layer::write(&m.tree, MODEL_LEVEL, mtime, &blobs)
                .with_context(|| format!("writing the layer of model {}", m.name))?,
        );
    }
    let uncompressed: u64 = layers.iter().map(|l| l.uncompressed).sum();
    if uncompressed > MAX_IMAGE {
        bail!(
            "the image is {} uncompressed, over Lambda's {} limit for images; quantize the largest models (quantize = \"int8\") or serve some from EFS/S3 (embed = false)",
            mb(uncompressed),
            mb(MAX_IMAGE)
        );
    }
    let config = ImageConfig {
        architecture: oci_arch(arch).into(),
        os: "linux".into(),
        config: RunConfig {
            entrypoint: vec![rootfs::ENTRYPOINT.into()],
            cmd: vec![],
            env: contents.env.clone(),
            working_dir: rootfs::TASK_ROOT.into(),
        },
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: layers.iter().map(|l| l.diff_id.clone()).collect(),
        },
    };
    let (config_descriptor, _) = json_blob(&blobs, spec::CONFIG_MEDIA_TYPE, &config)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: spec::MANIFEST_MEDIA_TYPE.into(),
        config: config_descriptor,
        layers: layers
            .iter()
            .map(|l| Descriptor {
                media_type: spec::LAYER_MEDIA_TYPE.into(),
                digest: l.digest.clone(),
                size: l.size,
                platform: None,
                annotations: l
                    .inputs
                    .iter()
                    .flat_map(|inputs| {
                        [
                            (layer::INPUTS_ANNOTATION.to_string(), inputs.clone()),
                            (
                                layer::TAR_SIZE_ANNOTATION.to_string(),
                                l.uncompressed.to_string(),
                            ),
                        ]
                    })
                    .collect(),
            })
            .collect(),
    };
    let (mut manifest_descriptor, _) = json_blob(&blobs, spec::MANIFEST_MEDIA_TYPE, &manifest)?;
    manifest_descriptor.platform = Some(Platform {
        architecture: oci_arch(arch).into(),
        os: "linux".into(),
    });
    manifest_descriptor
        .annotations
        .insert(spec::REF_NAME.into(), TAG.into());
    let index = Index {
        schema_version: 2,
        media_type: spec::INDEX_MEDIA_TYPE.into(),
        manifests: vec![manifest_descriptor],
    };
    std::fs::write(tmp.path().join("index.json"), serde_json::to_vec(&index)?)?;
    std::fs::write(
        tmp.path().join("oci-layout"),
        serde_json::to_vec(&OciLayout {
            image_layout_version: "1.0.0".into(),
        })?,
    )?;
    // Only a previous layout is replaced (checked above).
    if out.exists() {
        std::fs::remove_dir_all(out)
            .with_context(|| format!("cannot remove the old {}", out.display()))?;
    }
    let tmp = tmp.keep();
    std::fs::rename(&tmp, out)
        .with_context(|| format!("cannot move the image into {}", out.display()))?;
    let layout = Layout::open(out)?;
    Ok(Image {
        compressed: layout.compressed_size(),
        layout,
        uncompressed,
    })
}

/// The default image layout directory.
pub fn default_dir() -> PathBuf {
    crate::workspace::target_dir().join("lambda/image")
}
