//! One image layer, reproducibly: a tar whose entries are sorted, parents first, every
//! header built by hand (fixed mtime, uid/gid 0, modes from the entry, nothing read from the
//! file system's metadata), gzip'd at a fixed level with a zero gzip mtime. Written in one
//! streaming pass with a hasher on each side of the compressor: the tar's digest is the
//! config's diff_id, the gzip's the manifest's layer digest. Memory stays flat whatever the
//! file sizes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use runtime_emulator::image::{Hashing, Layout};

/// Single files from 8 GiB need tar's base-256 size field; whether Lambda's unpacker reads
/// it is unknown, so they are refused.
pub const MAX_FILE: u64 = 8 << 30;

/// What an entry holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Dir,
    /// A file copied from this machine; `sha256`, when given, is checked as it streams.
    File {
        from: PathBuf,
        sha256: Option<String>,
    },
    Symlink {
        target: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub mode: u32,
    pub source: Source,
}

/// A layer's entries by path (relative, `/`-separated, no leading `/`). The map's order is
/// byte order, which puts every directory before what it holds.
#[derive(Debug, Default)]
pub struct Tree {
    entries: BTreeMap<String, Entry>,
}

impl Tree {
    pub fn dir(&mut self, path: &str, mode: u32) {
        self.parents(path);
        self.entries.insert(
            path.to_string(),
            Entry {
                mode,
                source: Source::Dir,
            },
        );
    }

    pub fn file(&mut self, path: &str, mode: u32, from: &Path, sha256: Option<&str>) {
        self.parents(path);
        self.entries.insert(
            path.to_string(),
            Entry {
                mode,
                source: Source::File {
                    from: from.to_path_buf(),
                    sha256: sha256.map(str::to_string),
                },
            },
        );
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        self.parents(path);
        self.entries.insert(
            path.to_string(),
            Entry {
                mode: 0o777,
                source: Source::Symlink {
                    target: target.to_string(),
                },
            },
        );
    }

    /// Every missing parent directory, 0755.
    fn parents(&mut self, path: &str) {
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            let parent = &path[..at + i];
            self.entries.entry(parent.to_string()).or_insert(Entry {
                mode: 0o755,
                source: Source::Dir,
            });
            at += i + 1;
        }
    }

    pub fn paths(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter()
    }

    /// What the layer of this tree will hold, without reading a file: every entry's path,
    /// mode and content (a file's by its expected SHA-256). `None` when a file's content is
    /// only known by reading it (the code layer's).
    fn inputs(&self) -> Option<String> {
        let mut out = String::new();
        for (path, entry) in &self.entries {
            let content = match &entry.source {
                Source::Dir => "dir".to_string(),
                Source::Symlink { target } => format!("link {target}"),
                Source::File { sha256, .. } => format!("file {}", sha256.as_ref()?),
            };
            out.push_str(&format!("{path:?} {:o} {content}\n", entry.mode));
        }
        Some(out)
    }
}

/// A layer written to the blob store.
#[derive(Debug, Clone)]
pub struct LayerBlob {
    /// `sha256:` of the gzip bytes (the blob's name).
    pub digest: String,
    /// `sha256:` of the tar.
    pub diff_id: String,
    pub size: u64,
    pub uncompressed: u64,
    /// For a layer whose content is known without reading it (a model's: by its hash),
    /// `sha256:` of everything that decides its bytes; kept as the layer's
    /// [`INPUTS_ANNOTATION`] so the next build can take the blob instead of compressing the
    /// same gigabytes again.
    pub inputs: Option<String>,
}

/// The layer descriptor's annotation holding [`LayerBlob::inputs`].
pub const INPUTS_ANNOTATION: &str = "dev.onnx-lambda.layer.inputs";
/// The layer descriptor's annotation holding the tar's size (Lambda's limit counts it).
pub const TAR_SIZE_ANNOTATION: &str = "dev.onnx-lambda.layer.tar-size";
/// Bumped whenever [`write`] would write different bytes for the same tree.
const FORMAT: u32 = 1;

/// The inputs key of `tree` written at `level` with `mtime`, if its content is known.
pub fn inputs_of(tree: &Tree, level: u32, mtime: u64) -> Option<String> {
    let inputs = tree.inputs()?;
    Some(runtime_emulator::image::spec::digest_of(
        format!("format {FORMAT}\nlevel {level}\nmtime {mtime}\n{inputs}").as_bytes(),
    ))
}

/// The layer of `previous` (an earlier build's layout) made from the same `inputs`, linked
/// (or copied) into `blobs` and checked against its digest as it is read; `None` when there
/// is none or it does not check out, and the layer is written afresh.
pub fn reuse(previous: &Layout, inputs: &str, blobs: &Path) -> Option<LayerBlob> {
    let (index, layer) =
        previous.manifest.layers.iter().enumerate().find(|(_, l)| {
            l.annotations.get(INPUTS_ANNOTATION).map(String::as_str) == Some(inputs)
        })?;
    let uncompressed = layer.annotations.get(TAR_SIZE_ANNOTATION)?.parse().ok()?;
    let diff_id = previous.config.rootfs.diff_ids.get(index)?.clone();
    let from = previous.blob(&layer.digest).ok()?;
    let to = blobs.join(runtime_emulator::image::spec::sha256_hex(&layer.digest)?);
    if std::fs::hard_link(&from, &to).is_err() {
        std::fs::copy(&from, &to).ok()?;
    }
    let mut check = Hashing::new(std::fs::File::open(&to).ok()?);
    std::io::copy(&mut check, &mut std::io::sink()).ok()?;
    let (_, digest, size) = check.finish();
    if digest != layer.digest || size != layer.size {
        let _ = std::fs::remove_file(&to);
        return None;
    }
    Some(LayerBlob {
        digest,
        diff_id,
        size,
        uncompressed,
        inputs: Some(inputs.to_string()),
    })
}

fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// Writes `tree` as a gzip'd tar into `blobs` (the layout's `blobs/sha256/`), named by its
/// digest. `level`: gzip level (1 for models, which do not compress; 6 for code).
pub fn write(tree: &Tree, level: u32, mtime: u64, blobs: &Path) -> Result<LayerBlob> {
    let tmp = tempfile::NamedTempFile::new_in(blobs)
        .with_context(|| format!("cannot create a temporary file in {}", blobs.display()))?;
    let file = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file().try_clone()?);
    let gz_side = Hashing::new(file);
    // GzBuilder's defaults: no name, mtime 0, OS byte 255; XFL follows the fixed level.
    let gz = flate2::GzBuilder::new().write(gz_side, flate2::Compression::new(level));
    let tar_side = Hashing::new(gz);
    let mut tar = tar::Builder::new(tar_side);
    for (path, entry) in tree.paths() {
        match &entry.source {
            Source::Dir => {
                let mut h = header(tar::EntryType::Directory, entry.mode, 0, mtime);
                tar.append_data(&mut h, format!("{path}/"), std::io::empty())
                    .with_context(|| format!("writing {path}/ into the layer"))?;
            }
            Source::Symlink { target } => {
                let mut h = header(tar::EntryType::Symlink, entry.mode, 0, mtime);
                tar.append_link(&mut h, path, target)
                    .with_context(|| format!("writing the link {path} into the layer"))?;
            }
            Source::File { from, sha256 } => {
                let file = std::fs::File::open(from)
                    .with_context(|| format!("cannot open {}", from.display()))?;
                let size = file.metadata()?.len();
                if size >= MAX_FILE {
                    bail!(
                        "{} is {size} bytes: files of 8 GiB or more need tar's base-256 sizes, untested with Lambda; split or quantize the model",
                        from.display()
                    );
                }
                let mut h = header(tar::EntryType::Regular, entry.mode, size, mtime);
                // The packed model is checked against its lock as it is copied.
                let mut reader = Hashing::new(file.take(size));
                tar.append_data(&mut h, path, &mut reader)
                    .with_context(|| format!("writing {} into the layer", from.display()))?;
                if let Some(want) = sha256 {
                    let (_, digest, _) = reader.finish();
                    let got = &digest["sha256:".len()..];
                    if got != want {
                        bail!(
                            "{} changed since it was packed (sha256 {got}, the lock says {want}); run `cargo xtask pack-models`",
                            from.display()
                        );
                    }
                }
            }
        }
    }
    let (gz, diff_id, uncompressed) = tar
        .into_inner()
        .context("finishing the layer's tar")?
        .finish();
    let mut gz_side = gz.finish().context("finishing the layer's gzip")?;
    gz_side.flush()?;
    let (file, digest, size) = gz_side.finish();
    file.into_inner()
        .map_err(|e| e.into_error())
        .context("writing the layer")?;
    tmp.as_file().sync_all()?;
    tmp.persist(blobs.join(&digest["sha256:".len()..]))
        .with_context(|| format!("cannot write a blob into {}", blobs.display()))?;
    Ok(LayerBlob {
        digest,
        diff_id,
        size,
        uncompressed,
        inputs: inputs_of(tree, level, mtime),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn tree_in(dir: &Path) -> Tree {
        std::fs::write(dir.join("b"), b"bootstrap bytes").unwrap();
        std::fs::write(dir.join("m"), vec![7u8; 100_000]).unwrap();
        let mut t = Tree::default();
        // Added out of order: the layer sorts them.
        t.file("var/task/bootstrap", 0o755, &dir.join("b"), None);
        t.dir("tmp", 0o1777);
        t.file("opt/models/m/x.onnx", 0o644, &dir.join("m"), None);
        t.symlink("lib64/ld.so", "/lib/x/ld.so");
        t
    }

    #[test]
    fn the_same_files_give_the_same_bytes_whatever_their_metadata() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (ta, tb) = (tree_in(a.path()), tree_in(b.path()));
        // Different modes and times on disk: none of it may reach the layer.
        std::fs::set_permissions(b.path().join("b"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(b.path().join("m"), vec![7u8; 100_000]).unwrap();
        let (oa, ob) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let la = write(&ta, 6, 315_532_800, oa.path()).unwrap();
        let lb = write(&tb, 6, 315_532_800, ob.path()).unwrap();
        assert_eq!(la.digest, lb.digest);
        assert_eq!(la.diff_id, lb.diff_id);
        let blob = std::fs::read(oa.path().join(&la.digest[7..])).unwrap();
        assert_eq!(blob.len() as u64, la.size);
        // gzip header: mtime 0, OS "unknown".
        assert_eq!(&blob[4..8], &[0, 0, 0, 0]);
        assert_eq!(blob[9], 255);

        // Entries come out sorted, parents first, with the modes given.
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&blob[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(tar.len() as u64, la.uncompressed);
        assert_eq!(la.diff_id, runtime_emulator::image::spec::digest_of(&tar));
        let mut archive = tar::Archive::new(&tar[..]);
        let listed: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        let names: Vec<&str> = listed.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "lib64/",
                "lib64/ld.so",
                "opt/",
                "opt/models/",
                "opt/models/m/",
                "opt/models/m/x.onnx",
                "tmp/",
                "var/",
                "var/task/",
                "var/task/bootstrap"
            ]
        );
        assert!(listed.iter().all(|(_, _, t)| *t == 315_532_800));
        let mode = |n: &str| listed.iter().find(|(p, _, _)| p == n).unwrap().1;
        assert_eq!(mode("tmp/"), 0o1777);
        assert_eq!(mode("var/task/bootstrap"), 0o755);
        assert_eq!(mode("opt/models/m/x.onnx"), 0o644);
    }

    #[test]
    fn a_file_that_changed_since_packing_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m"), b"packed").unwrap();
        let mut t = Tree::default();
        t.file("opt/m", 0o644, &dir.path().join("m"), Some(&"0".repeat(64)));
        let e = write(&t, 1, 0, dir.path()).unwrap_err().to_string();
        assert!(e.contains("changed since it was packed"), "{e}");
    }

    #[test]
    fn a_layer_is_keyed_by_everything_that_decides_its_bytes() {
        let model = |sha: &str, mode: u32| {
            let mut t = Tree::default();
            t.file(
                "opt/models/m/x.onnx",
                mode,
                Path::new("/nowhere"),
                Some(sha),
            );
            t
        };
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let key = inputs_of(&model(&a, 0o644), 2, 0).unwrap();
        // The file's place on this machine does not matter; its content does.
        let mut moved = Tree::default();
        moved.file(
            "opt/models/m/x.onnx",
            0o644,
            Path::new("/elsewhere"),
            Some(&a),
        );
        assert_eq!(inputs_of(&moved, 2, 0).unwrap(), key);
        for other in [
            inputs_of(&model(&b, 0o644), 2, 0),
            inputs_of(&model(&a, 0o600), 2, 0),
            inputs_of(&model(&a, 0o644), 6, 0),
            inputs_of(&model(&a, 0o644), 2, 1),
        ] {
            assert_ne!(other.unwrap(), key);
        }
        // A file known only by reading it (the code layer's) gives no key.
        let mut code = Tree::default();
        code.file("var/task/bootstrap", 0o755, Path::new("/b"), None);
        assert_eq!(inputs_of(&code, 6, 0), None);
    }
}
