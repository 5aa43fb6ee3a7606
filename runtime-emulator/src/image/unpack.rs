//! Layers → root: each gzip'd tar read once, hashed as it streams (the compressed bytes
//! against the manifest's digest, the tar against the config's diff_id) and unpacked by the
//! `tar` crate, which refuses entries that would land outside the root.

use std::path::Path;

use super::{Hashing, ImageError, Layout};

/// Unpacks every layer of `layout` in order into `root`, which must be empty or absent.
/// Whiteouts (a layer deleting what an earlier one wrote) are refused: images this project
/// builds have none.
pub fn unpack(layout: &Layout, root: &Path) -> Result<(), ImageError> {
    std::fs::create_dir_all(root).map_err(ImageError::io(root))?;
    if std::fs::read_dir(root)
        .map_err(ImageError::io(root))?
        .next()
        .is_some()
    {
        return Err(ImageError::Invalid(format!(
            "{} is not empty: an image is unpacked into an empty root",
            root.display()
        )));
    }
    for (layer, diff_id) in layout
        .manifest
        .layers
        .iter()
        .zip(&layout.config.rootfs.diff_ids)
    {
        let path = layout.blob(&layer.digest)?;
        let file = std::fs::File::open(&path).map_err(ImageError::io(&path))?;
        let compressed = Hashing::new(std::io::BufReader::with_capacity(1 << 20, file));
        let tar = Hashing::new(flate2::read::GzDecoder::new(compressed));
        let mut archive = tar::Archive::new(tar);
        archive.set_preserve_permissions(true);
        archive.set_preserve_mtime(true);
        archive.set_overwrite(true);
        let entries = archive.entries().map_err(ImageError::io(&path))?;
        for entry in entries {
            let mut entry = entry.map_err(ImageError::io(&path))?;
            let name = entry.path().map_err(ImageError::io(&path))?.into_owned();
            if name
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".wh."))
            {
                return Err(ImageError::Invalid(format!(
                    "layer {}: whiteout {} (deleting files across layers) is not supported",
                    layer.digest,
                    name.display()
                )));
            }
            let inside = entry
                .unpack_in(root)
                .map_err(ImageError::io(root.join(&name)))?;
            if !inside {
                return Err(ImageError::Invalid(format!(
                    "layer {}: entry {} would land outside the root; refused",
                    layer.digest,
                    name.display()
                )));
            }
        }
        // The rest of the tar (its end blocks) and of the gzip stream, so both hashes cover
        // everything.
        let mut tar = archive.into_inner();
        std::io::copy(&mut tar, &mut std::io::sink()).map_err(ImageError::io(&path))?;
        let (gz, tar_digest, _) = tar.finish();
        let mut compressed = gz.into_inner();
        std::io::copy(&mut compressed, &mut std::io::sink()).map_err(ImageError::io(&path))?;
        if &tar_digest != diff_id {
            return Err(ImageError::Invalid(format!(
                "layer {}: the uncompressed tar does not match the config's diff_id {diff_id}; rebuild the image",
                layer.digest
            )));
        }
        if compressed.finish().1 != layer.digest {
            return Err(ImageError::Invalid(format!(
                "{}: contents do not match the layer's digest; rebuild the image",
                path.display()
            )));
        }
    }
    Ok(())
}
