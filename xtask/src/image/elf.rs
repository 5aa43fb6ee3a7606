//! What an image must carry for a dynamically linked `bootstrap` to start: its program
//! interpreter (`PT_INTERP`) and, transitively, its `DT_NEEDED` libraries, read from the ELF
//! files with `object` (never `ldd`, which runs code and answers for this machine's
//! architecture only).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use object::elf;
use object::read::elf::{Dyn as _, FileHeader as _, ProgramHeader as _};

use crate::build::package::Arch;

/// The dynamic-linking facts of one ELF file.
#[derive(Debug, Default, PartialEq)]
pub struct Linking {
    pub machine: u16,
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
}

pub fn read(path: &Path) -> Result<Linking> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&data)
        .with_context(|| format!("{} is not a 64-bit little-endian ELF file", path.display()))
}

fn parse(data: &[u8]) -> Result<Linking> {
    let header = elf::FileHeader64::<object::Endianness>::parse(data)?;
    let endian = header.endian()?;
    let mut out = Linking {
        machine: header.e_machine(endian),
        ..Default::default()
    };
    for segment in header.program_headers(endian, data)? {
        if segment.p_type(endian) == elf::PT_INTERP {
            let bytes = segment
                .data(endian, data)
                .map_err(|()| anyhow::anyhow!("bad PT_INTERP"))?;
            let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
            out.interpreter = Some(String::from_utf8_lossy(&bytes[..end]).into_owned());
        }
    }
    let sections = header.sections(endian, data)?;
    if let Some((entries, link)) = sections.dynamic(endian, data)? {
        let strings = sections.strings(endian, data, link)?;
        for d in entries {
            if d.d_tag(endian) == u64::from(elf::DT_NEEDED) {
                let name = d
                    .string(endian, strings)
                    .map_err(|e| anyhow::anyhow!("bad DT_NEEDED string: {e}"))?;
                out.needed.push(String::from_utf8_lossy(name).into_owned());
            }
        }
    }
    Ok(out)
}

/// The Debian multiarch name of the architecture: where its libraries live.
pub fn multiarch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64-linux-gnu",
        Arch::Arm64 => "aarch64-linux-gnu",
    }
}

/// Where this machine keeps libraries for `arch` (the cross sysroot for arm64).
fn search_dirs(arch: Arch) -> Vec<PathBuf> {
    let m = multiarch(arch);
    let mut dirs = vec![
        PathBuf::from(format!("/lib/{m}")),
        PathBuf::from(format!("/usr/lib/{m}")),
    ];
    match arch {
        Arch::X86_64 => {
            dirs.extend(["/lib64", "/usr/lib64", "/lib", "/usr/lib"].map(PathBuf::from))
        }
        Arch::Arm64 => dirs.insert(0, PathBuf::from(format!("/usr/{m}/lib"))),
    }
    dirs
}

/// Every library `binary` needs, transitively, by name → the file on this machine (links
/// resolved), and the interpreter's path and file; each checked to be for `arch`.
#[derive(Debug)]
pub struct Closure {
    pub interpreter: Option<(String, PathBuf)>,
    pub libraries: BTreeMap<String, PathBuf>,
}

pub fn closure(binary: &Linking, arch: Arch) -> Result<Closure> {
    let machine = arch.elf_machine();
    let dirs = search_dirs(arch);
    let mut libraries = BTreeMap::new();
    let mut queue: Vec<String> = binary.needed.clone();
    while let Some(name) = queue.pop() {
        if libraries.contains_key(&name) {
            continue;
        }
        if name.contains('/') {
            bail!("bootstrap needs {name:?} by path; only library names can be resolved");
        }
        let found = dirs
            .iter()
            .map(|d| d.join(&name))
            .filter(|p| p.exists())
            .find_map(|p| {
                let linking = read(&p).ok()?;
                (linking.machine == machine).then_some((p, linking))
            });
        let Some((path, linking)) = found else {
            bail!(
                "bootstrap needs {name}, which is not in {} for {}; install the target's libc (e.g. libc6-dev-arm64-cross) or build statically",
                dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
                arch.lambda_name()
            );
        };
        let real = path
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", path.display()))?;
        queue.extend(linking.needed);
        libraries.insert(name, real);
    }
    let interpreter = match &binary.interpreter {
        Some(interp) => {
            // The cross sysroot holds the target's loader under its own prefix.
            let name = Path::new(interp)
                .file_name()
                .context("PT_INTERP names no file")?
                .to_string_lossy()
                .into_owned();
            let host = match libraries.get(&name) {
                Some(p) => p.clone(),
                None => dirs
                    .iter()
                    .map(|d| d.join(&name))
                    .chain([PathBuf::from(interp)])
                    .find(|p| p.exists())
                    .with_context(|| {
                        format!("the program interpreter {interp} is not on this machine")
                    })?
                    .canonicalize()?,
            };
            if read(&host)?.machine != machine {
                bail!("{} is not a {} loader", host.display(), arch.lambda_name());
            }
            Some((interp.clone(), host))
        }
        None => None,
    };
    Ok(Closure {
        interpreter,
        libraries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binarys_libraries_are_found() {
        let me = read(&std::env::current_exe().unwrap()).unwrap();
        assert_eq!(me.machine, Arch::X86_64.elf_machine());
        assert!(me.needed.iter().any(|n| n.starts_with("libc.so")), "{me:?}");
        assert!(me.interpreter.as_deref().unwrap().contains("ld-linux"));
        let c = closure(&me, Arch::X86_64).unwrap();
        assert!(c.libraries.contains_key("libc.so.6"));
        assert!(c.interpreter.unwrap().1.is_file());
        assert!(parse(b"not an elf").is_err());
    }
}
