//! What goes into the image, as layer trees: the code layer (`/var/task/bootstrap`, the
//! loader and shared libraries it links against, taken from this machine, the CA bundle its
//! S3 client verifies TLS with, the directories Lambda mounts on) and one layer per image
//! model (`/opt/models/<name>/<sha256>.<ext>`, the layout every store uses).

use std::path::Path;

use anyhow::{Context, Result};
use model_lock::{Artifact, LockFile};

use super::elf;
use super::layer::Tree;
use crate::build::package::Arch;

pub const TASK_ROOT: &str = "/var/task";
pub const ENTRYPOINT: &str = "/var/task/bootstrap";
pub const MODELS_DIR: &str = "/opt/models";
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A model layer: the model's name and its tree.
pub struct ModelLayer {
    pub name: String,
    pub size: u64,
    pub tree: Tree,
}

pub struct Contents {
    pub code: Tree,
    pub models: Vec<ModelLayer>,
    /// The image config's `Env`.
    pub env: Vec<String>,
}

fn strip_root(path: &str) -> &str {
    path.trim_start_matches('/')
}

pub fn contents(
    bootstrap: &Path,
    arch: Arch,
    lock: Option<&LockFile>,
    packed: &Path,
) -> Result<Contents> {
    let mut code = Tree::default();
    code.file(strip_root(ENTRYPOINT), 0o755, bootstrap, None);
    // Mount points: Lambda's /tmp (and the emulator's) is a writable tmpfs over a read-only
    // root; /proc and /dev are provided by the environment.
    code.dir("tmp", 0o1777);
    code.dir("proc", 0o555);
    code.dir("dev", 0o755);

    let linking = elf::read(bootstrap)?;
    let closure = elf::closure(&linking, arch)?;
    let libdir = format!("lib/{}", elf::multiarch(arch));
    for (name, host) in &closure.libraries {
        code.file(&format!("{libdir}/{name}"), 0o755, host, None);
    }
    if let Some((interp, host)) = &closure.interpreter {
        let name = host
            .file_name()
            .context("the loader has no file name")?
            .to_string_lossy();
        let inside = format!("{libdir}/{name}");
        if !closure.libraries.contains_key(name.as_ref()) {
            code.file(&inside, 0o755, host, None);
        }
        if strip_root(interp) != inside {
            code.symlink(strip_root(interp), &format!("/{inside}"));
        }
    }
    let mut env = vec!["PATH=/usr/local/bin:/usr/bin:/bin".to_string()];
    if Path::new(CA_BUNDLE).is_file() {
        code.file(strip_root(CA_BUNDLE), 0o644, Path::new(CA_BUNDLE), None);
        env.push(format!("SSL_CERT_FILE={CA_BUNDLE}"));
    } else {
        eprintln!("warning: no {CA_BUNDLE} on this machine: the image has no CA certificates, so its S3 fallback cannot verify TLS (install ca-certificates)");
    }

    let mut models = Vec::new();
    for m in lock.into_iter().flat_map(|l| &l.models) {
        if m.artifact != Artifact::Image {
            continue;
        }
        let mut tree = Tree::default();
        let rel = inference_core::fallback::relative_path(&m.name, &m.sha256, m.format);
        tree.file(
            &format!("{}/{rel}", strip_root(MODELS_DIR)),
            0o644,
            &packed.join(&m.file),
            Some(&m.sha256),
        );
        models.push(ModelLayer {
            name: m.name.clone(),
            size: m.size,
            tree,
        });
    }
    if !models.is_empty() {
        env.push(format!(
            "{}={MODELS_DIR}",
            inference_core::settings::MODEL_IMAGE_DIR
        ));
    }
    Ok(Contents { code, models, env })
}
