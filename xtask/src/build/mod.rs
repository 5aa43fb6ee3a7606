//! `cargo xtask build`: the release `bootstrap` (`crate::bootstrap`), checked against what
//! provided.al2023 runs (`glibc.rs`) and packaged as the zip (`package.rs`), or with
//! `--image` as the container image (`crate::image`); the one place that packages the
//! shipped binary.

pub mod glibc;
pub mod package;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use model_lock::{Artifact, LockFile, ModelEntry, LOCK_FILE_NAME};

use crate::image::choice::{self, Needed};
use crate::image::Image;
use crate::{image, workspace};
use package::{mb, Arch, Package};

#[derive(Args, Debug, Clone)]
pub struct BuildArgs {
    /// The Lambda architecture to build for.
    #[arg(long, value_enum, default_value = "x86_64")]
    pub arch: Arch,
    /// Package this prebuilt binary instead of building (it is still checked).
    #[arg(long, value_name = "PATH")]
    pub bootstrap: Option<PathBuf>,
    /// The packed-models directory the binary embeds (for the size breakdown and the list of
    /// models).
    #[arg(long, default_value_os_t = workspace::default_packed_dir())]
    pub packed: PathBuf,
    /// Where the zip goes.
    #[arg(long, default_value_os_t = workspace::target_dir().join("lambda/bootstrap.zip"))]
    pub out: PathBuf,
    /// Build a container image (an OCI image layout, no Docker needed) instead of the zip:
    /// up to 10 GB, for models a zip's 250 MB cannot hold (`artifact = "image"`).
    #[arg(long)]
    pub image: bool,
    /// Where the image layout goes.
    #[arg(long, default_value_os_t = image::default_dir())]
    pub image_out: PathBuf,
}

/// What `build` made.
pub enum Built {
    Zip(Package),
    // Boxed: the layout's parsed documents make it several times a Package's size.
    Image(Box<Image>),
}

impl Built {
    /// The models the function serves from its own artifact (embedded, or image files).
    pub fn models(&self, lock: Option<&LockFile>) -> Vec<ModelEntry> {
        let ships = |m: &&ModelEntry| match self {
            Built::Zip(_) => m.embedded(),
            Built::Image(_) => m.embedded() || m.artifact == Artifact::Image,
        };
        lock.into_iter()
            .flat_map(|l| &l.models)
            .filter(ships)
            .cloned()
            .collect()
    }
}

/// `cargo xtask build`: the release binary (or `--bootstrap`), checked, and zipped — or
/// with `--image`, an image layout. Says which artifact the manifest needs, and refuses a
/// zip that could not serve it.
pub fn build(args: &BuildArgs) -> Result<(Built, Option<LockFile>)> {
    let lock_path = args.packed.join(LOCK_FILE_NAME);
    let lock = if lock_path.exists() {
        Some(LockFile::read(&lock_path)?)
    } else {
        eprintln!(
            "warning: no {} (run `cargo xtask pack-models`): the size breakdown lists no models",
            lock_path.display()
        );
        None
    };
    let binary = match &args.bootstrap {
        Some(path) => path.clone(),
        None => {
            check_target_installed(args.arch)?;
            crate::bootstrap::build_release_for(args.arch.rust_target())?
        }
    };
    let binary_size = std::fs::metadata(&binary)
        .with_context(|| format!("cannot read {}", binary.display()))?
        .len();
    let choice = choice::explain(binary_size, None, lock.as_ref());
    if args.image {
        let image = image::build(
            &binary,
            args.arch,
            lock.as_ref(),
            &args.packed,
            &args.image_out,
        )?;
        println!(
            "{}: image {} ({} uncompressed, {} compressed in {} layers)",
            args.image_out.display(),
            image.digest(),
            mb(image.uncompressed),
            mb(image.compressed),
            image.layout.manifest.layers.len()
        );
        // Now the image's own total is known: the table adds what it carries beside the
        // binary and the models (libraries, CA bundle, tar headers).
        let in_image: u64 = lock
            .iter()
            .flat_map(|l| &l.models)
            .filter(|m| m.artifact == Artifact::Image)
            .map(|m| m.size)
            .sum();
        let support = image.uncompressed.saturating_sub(binary_size + in_image);
        let choice = choice::explain(binary_size, Some(support), lock.as_ref());
        println!("{}", choice.table);
        if choice.needed == Needed::Zip {
            println!("(a zip would do for this manifest: `cargo xtask build` without --image)");
        }
        return Ok((Built::Image(Box::new(image)), lock));
    }
    if let Needed::Image(why) = &choice.needed {
        bail!(
            "this manifest needs the container image, not the zip ({why}):\n{}\nBuild it with `cargo xtask build --image` (deploy with `--image --repository NAME`), or serve the big models from EFS/S3 (embed = false).",
            choice.table
        );
    }
    let package = package::package(&binary, args.arch, lock.as_ref(), &args.out)?;
    println!(
        "{}: {} zipped ({} unzipped), sha256 {} (CodeSha256 {})",
        package.zip.display(),
        mb(package.zip_size),
        mb(package.unzipped),
        package.sha256_hex,
        package.code_sha256
    );
    println!("{}", package::breakdown(package.unzipped, &package.models));
    Ok((Built::Zip(package), lock))
}

/// Cross builds need the target's standard library; say how to get it rather than
/// letting cargo fail with "can't find crate for `std`".
fn check_target_installed(arch: Arch) -> Result<()> {
    let target = arch.rust_target();
    let out = std::process::Command::new("rustc")
        .args(["--print", "target-libdir", "--target", target])
        .output()
        .context("running rustc")?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !out.status.success() || !dir.is_dir() {
        bail!(
            "--arch {} needs the Rust target {target}, which is not installed. Add it with `rustup target add {target}` (and a linker for it, e.g. cargo-zigbuild or gcc-aarch64-linux-gnu).",
            arch.lambda_name()
        );
    }
    Ok(())
}
