//! Amazon Linux 2023 (`provided.al2023`) ships glibc 2.34: a `bootstrap` linked against
//! newer symbol versions fails at exec time with "version `GLIBC_2.xx' not found". This
//! reads the ELF's version-needed table and names every symbol that needs more than 2.34.

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};
use object::elf::{FileHeader64, SHT_DYNSYM};
use object::read::elf::{FileHeader, Sym};
use object::read::SymbolIndex;
use object::Endianness;

/// The newest glibc the runtime provides.
pub const MAX_GLIBC: (u32, u32) = (2, 34);

/// `GLIBC_2.35` → (2, 35).
fn glibc_version(name: &str) -> Option<(u32, u32)> {
    let v = name.strip_prefix("GLIBC_")?;
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// `symbol@GLIBC_x.y` for every dynamic symbol needing a glibc newer than `max`, and the
/// newer versions required without a symbol, sorted. Empty: the binary runs on `max`.
/// The ELF tables are read with `object`, as the image's library closure is.
pub fn too_new(elf: &[u8], max: (u32, u32)) -> Result<Vec<String>> {
    let malformed = "the ELF file is truncated or malformed";
    let header = FileHeader64::<Endianness>::parse(elf)
        .context("not a 64-bit ELF file (Lambda runs x86_64 and arm64 ones)")?;
    let endian = header.endian().context(malformed)?;
    let sections = header.sections(endian, elf).context(malformed)?;
    let is_too_new = |name: &str| glibc_version(name).is_some_and(|v| v > max);
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();

    // Every version the binary needs from its libraries (glibc's among them).
    let mut needed = BTreeSet::new();
    if let Some((mut files, link)) = sections.gnu_verneed(endian, elf).context(malformed)? {
        let strings = sections.strings(endian, elf, link).context(malformed)?;
        while let Some((_, mut versions)) = files.next().context(malformed)? {
            while let Some(version) = versions.next().context(malformed)? {
                needed.insert(text(version.name(endian, strings).context(malformed)?));
            }
        }
    }
    let mut offending = Vec::new();
    let mut with_symbols = BTreeSet::new();
    if let Some(versions) = sections.versions(endian, elf).context(malformed)? {
        let symbols = sections
            .symbols(endian, elf, SHT_DYNSYM)
            .context(malformed)?;
        for (i, symbol) in symbols.symbols().iter().enumerate() {
            let index = versions.version_index(endian, SymbolIndex(i));
            let Some(version) = versions.version(index).context(malformed)? else {
                continue;
            };
            let version = text(version.name());
            if is_too_new(&version) {
                let name = text(symbol.name(endian, symbols.strings()).context(malformed)?);
                offending.push(format!("{name}@{version}"));
                with_symbols.insert(version);
            }
        }
    }
    for version in &needed {
        if is_too_new(version) && !with_symbols.contains(version) {
            offending.push(format!("(no symbol)@{version}"));
        }
    }
    offending.sort();
    offending.dedup();
    Ok(offending)
}

/// Fails naming the offending symbols when `elf` needs a glibc newer than Lambda's.
pub fn check(elf: &[u8], what: &str) -> Result<()> {
    let offending = too_new(elf, MAX_GLIBC)?;
    if !offending.is_empty() {
        bail!(
            "{what} needs a newer glibc than provided.al2023 has ({}.{}); it would fail to start on Lambda. Symbols:\n  {}\nBuild on an older distribution, or with cargo-zigbuild targeting x86_64-unknown-linux-gnu.2.34.",
            MAX_GLIBC.0,
            MAX_GLIBC.1,
            offending.join("\n  ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_garbage() {
        assert_eq!(glibc_version("GLIBC_2.34"), Some((2, 34)));
        assert_eq!(glibc_version("GLIBC_2.2.5"), Some((2, 2)));
        assert_eq!(glibc_version("GLIBC_PRIVATE"), None);
        assert!(too_new(b"not an elf", MAX_GLIBC).is_err());
        assert!(too_new(b"\x7fELF\x02\x01", MAX_GLIBC).is_err(), "truncated");
    }

    #[test]
    fn this_test_binary_is_read() {
        // Whatever glibc this machine has, the parser must get through a real binary.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let all = too_new(&me, (2, 0)).unwrap();
        // Every binary linked against glibc needs GLIBC_2.2.5 at least (x86_64's first).
        assert!(
            all.iter().any(|s| s.contains("@GLIBC_2.")) && all.iter().any(|s| !s.starts_with('(')),
            "{all:?}"
        );
        let newest = all
            .iter()
            .filter_map(|s| glibc_version(s.rsplit('@').next()?))
            .max()
            .unwrap();
        assert!(too_new(&me, newest).unwrap().is_empty());
    }
}
