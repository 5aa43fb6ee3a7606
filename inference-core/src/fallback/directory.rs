//! A directory store — the EFS mount, or the models directory of a container image — laid
//! out as `<dir>/<name>/<sha256>.<onnx|nnef.tar>`. The store is not trusted for anything:
//! only a regular file inside the store's directory, of the size the lock recorded, is
//! read, and its hash must be the build's.

use std::io::Read as _;
use std::path::Path;

use super::error::StoreError;
use crate::checksum;

/// Reads and verifies one model of `size` bytes. The error says which file and what was
/// wrong with it.
pub(crate) fn read(dir: &Path, rel: &str, sha256: &str, size: u64) -> Result<Vec<u8>, StoreError> {
    let path = dir.join(rel);
    let shown = path.display();
    // Symlinks are resolved, and must stay inside the store.
    let real = path.canonicalize().map_err(StoreError::io(&shown))?;
    let root = dir.canonicalize().map_err(StoreError::io(dir.display()))?;
    if !real.starts_with(&root) {
        return Err(StoreError::OutsideStore {
            place: shown.to_string(),
            real: real.display().to_string(),
            root: root.display().to_string(),
        });
    }
    // Checked before opening: opening a FIFO would block, and a device never ends.
    let meta = std::fs::metadata(&real).map_err(StoreError::io(&shown))?;
    if !meta.is_file() {
        return Err(StoreError::NotAFile {
            place: shown.to_string(),
        });
    }
    if meta.len() != size {
        return Err(StoreError::WrongSize {
            place: shown.to_string(),
            actual: meta.len(),
            expected: size,
            then: "skipped without reading it",
        });
    }
    let file = std::fs::File::open(&real).map_err(StoreError::io(&shown))?;
    // Never more than the lock's size, even if the file grows while it is read.
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(size)
        .read_to_end(&mut bytes)
        .map_err(StoreError::io(&shown))?;
    checksum::verify_sha256(&bytes, sha256).map_err(|mismatch| StoreError::WrongContents {
        place: shown.to_string(),
        mismatch,
    })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(sha: &str) -> String {
        super::super::relative_path("m", sha, model_lock::ModelFormat::Onnx)
    }

    #[test]
    fn reads_verified_files_and_skips_wrong_ones() {
        let dir = tempfile::tempdir().unwrap();
        let good = b"model bytes".to_vec();
        let sha = checksum::sha256_hex(&good);
        let size = good.len() as u64;
        let err = read(dir.path(), &rel(&sha), &sha, size)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("m/{sha}.onnx")), "{err}");

        std::fs::create_dir_all(dir.path().join("m")).unwrap();
        let path = dir.path().join(format!("m/{sha}.onnx"));
        std::fs::write(&path, b"tampered!!!").unwrap();
        let err = read(dir.path(), &rel(&sha), &sha, size)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("wrong contents") && err.contains(&sha),
            "{err}"
        );
        std::fs::write(&path, b"a much longer file than the lock says").unwrap();
        let err = read(dir.path(), &rel(&sha), &sha, size)
            .unwrap_err()
            .to_string();
        assert!(err.contains("without reading it"), "{err}");

        std::fs::write(&path, &good).unwrap();
        assert_eq!(read(dir.path(), &rel(&sha), &sha, size).unwrap(), good);
    }

    #[test]
    fn only_regular_files_inside_the_store_are_read() {
        let store = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let good = b"model bytes".to_vec();
        let sha = checksum::sha256_hex(&good);
        let size = good.len() as u64;
        std::fs::create_dir_all(store.path().join("m")).unwrap();
        let path = store.path().join(format!("m/{sha}.onnx"));

        // A symlink leaving the store, even to the right bytes.
        let elsewhere = outside.path().join("model.onnx");
        std::fs::write(&elsewhere, &good).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        let err = read(store.path(), &rel(&sha), &sha, size)
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside the store"), "{err}");
        std::fs::remove_file(&path).unwrap();

        // A FIFO: refused without opening it (which would block forever).
        let status = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        let err = read(store.path(), &rel(&sha), &sha, size)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
        std::fs::remove_file(&path).unwrap();

        // A symlink inside the store is fine.
        let inside = store.path().join("m/real.onnx");
        std::fs::write(&inside, &good).unwrap();
        std::os::unix::fs::symlink(&inside, &path).unwrap();
        assert_eq!(read(store.path(), &rel(&sha), &sha, size).unwrap(), good);
    }
}
