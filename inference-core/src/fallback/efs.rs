//! The EFS store: a mounted directory laid out as `<dir>/<name>/<sha256>.onnx`.

use std::path::Path;

use crate::checksum;

/// Reads and verifies one model. The error says which file and what was wrong with it.
pub fn read(dir: &Path, name: &str, sha256: &str) -> Result<Vec<u8>, String> {
    let path = dir.join(super::relative_path(name, sha256));
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    checksum::verify_sha256(&bytes, sha256).map_err(|actual| {
        format!(
            "{}: wrong contents (sha256 {actual}, the build expects {sha256}); skipped",
            path.display()
        )
    })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_verified_files_and_skips_wrong_ones() {
        let dir = tempfile::tempdir().unwrap();
        let good = b"model bytes".to_vec();
        let sha = checksum::sha256_hex(&good);
        let err = read(dir.path(), "m", &sha).unwrap_err();
        assert!(err.contains(&format!("m/{sha}.onnx")), "{err}");

        std::fs::create_dir_all(dir.path().join("m")).unwrap();
        let path = dir.path().join(format!("m/{sha}.onnx"));
        std::fs::write(&path, b"tampered").unwrap();
        let err = read(dir.path(), "m", &sha).unwrap_err();
        assert!(
            err.contains("wrong contents") && err.contains(&sha),
            "{err}"
        );

        std::fs::write(&path, &good).unwrap();
        assert_eq!(read(dir.path(), "m", &sha).unwrap(), good);
    }
}
