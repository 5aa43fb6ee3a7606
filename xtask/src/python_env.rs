//! Python virtual environments the tests need (moto's server mode for the AWS APIs), each
//! under `target/pyenv-<name>/`, built from a
//! pinned requirements file in `xtask/requirements/`. A stamp holding the requirements'
//! SHA-256 makes a second call free and a changed file rebuild the environment.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::workspace;

const STAMP: &str = "requirements.sha256";

pub struct PythonEnv {
    pub dir: PathBuf,
}

impl PythonEnv {
    pub fn python(&self) -> PathBuf {
        self.dir.join("bin").join("python")
    }

    pub fn bin(&self, program: &str) -> PathBuf {
        self.dir.join("bin").join(program)
    }
}

/// The requirements file `xtask/requirements/<name>.txt`.
pub fn requirements(name: &str) -> PathBuf {
    workspace::root()
        .join("xtask/requirements")
        .join(format!("{name}.txt"))
}

/// Makes sure `target/pyenv-<name>` holds exactly `xtask/requirements/<name>.txt`.
pub fn ensure(name: &str) -> Result<PythonEnv> {
    let reqs = requirements(name);
    let wanted = inference_core::sha256_hex(
        &std::fs::read(&reqs).with_context(|| format!("cannot read {}", reqs.display()))?,
    );
    let env = PythonEnv {
        dir: workspace::target_dir().join(format!("pyenv-{name}")),
    };
    let stamp = env.dir.join(STAMP);
    if env.python().exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&wanted) {
        return Ok(env);
    }
    eprintln!(
        "installing Python environment {} from {}",
        env.dir.display(),
        reqs.display()
    );
    // A half-built environment from an interrupted run is not trusted: start clean.
    if env.dir.exists() {
        std::fs::remove_dir_all(&env.dir)
            .with_context(|| format!("cannot remove {}", env.dir.display()))?;
    }
    run(Command::new("python3").args(["-m", "venv"]).arg(&env.dir))?;
    run(Command::new(env.python())
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "-q",
            "-r",
        ])
        .arg(&reqs))?;
    std::fs::write(&stamp, &wanted).with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(env)
}

fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}
