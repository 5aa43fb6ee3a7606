//! Writing outputs so nothing is ever half-written: a temporary file next to the destination,
//! synced, then renamed into place.

use std::path::Path;

use anyhow::{Context, Result};

/// Writes `bytes` to `dest` atomically (temp file in the same directory + rename).
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    // Temp files are created 0600; these are ordinary readable outputs.
    {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644));
    }
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", dest.display()))?;
    tmp.persist(dest)
        .with_context(|| format!("cannot move the new file into {}", dest.display()))?;
    Ok(())
}

/// Like [`write_atomic`], but an unchanged file keeps its mtime, so cargo does not re-embed
/// it and relink.
pub fn write_if_changed(dest: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::read(dest).ok().as_deref() == Some(bytes) {
        return Ok(());
    }
    write_atomic(dest, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_files_keep_their_mtime_and_changes_land_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_if_changed(&path, b"one").unwrap();
        let mtime = || std::fs::metadata(&path).unwrap().modified().unwrap();
        let before = mtime();
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_if_changed(&path, b"one").unwrap();
        assert_eq!(mtime(), before);
        write_if_changed(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
