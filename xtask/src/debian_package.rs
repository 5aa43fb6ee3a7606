//! A Debian package's files for the tests, without installing it: `apt-get download` and
//! `dpkg-deb -x` into `target/debian/<package>/` (no service started, nothing outside the
//! target directory touched). The reference OCI registry (`docker-registry`) comes this way.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::workspace;

/// `binary` (a path inside the package, e.g. `usr/bin/docker-registry`) from `package`,
/// fetched and unpacked once.
pub fn ensure(package: &str, binary: &str) -> Result<PathBuf> {
    let parent = workspace::target_dir().join("debian");
    let dest = parent.join(package);
    let path = dest.join(binary);
    if path.is_file() {
        return Ok(path);
    }
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{package}-"))
        .tempdir_in(&parent)
        .with_context(|| format!("cannot create a directory in {}", parent.display()))?;
    eprintln!("fetching the Debian package {package} (apt-get download)");
    let status = Command::new("apt-get")
        .args(["download", "--quiet", package])
        .current_dir(tmp.path())
        .status()
        .context("cannot run apt-get (the tests need a Debian or Ubuntu machine)")?;
    if !status.success() {
        bail!("`apt-get download {package}` failed ({status}); run `apt-get update` and try again");
    }
    let deb = std::fs::read_dir(tmp.path())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .with_context(|| format!("apt-get download {package} wrote no .deb"))?;
    let files = tmp.path().join("files");
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&files)
        .status()
        .context("cannot run dpkg-deb")?;
    if !status.success() {
        bail!("dpkg-deb -x {} failed ({status})", deb.display());
    }
    if !files.join(binary).is_file() {
        bail!("the package {package} has no {binary}");
    }
    if dest.exists() {
        std::fs::remove_dir_all(&dest)
            .with_context(|| format!("cannot remove {}", dest.display()))?;
    }
    std::fs::rename(&files, &dest)
        .with_context(|| format!("cannot move {} into place", dest.display()))?;
    Ok(path)
}
