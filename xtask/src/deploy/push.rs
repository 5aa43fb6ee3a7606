//! `deploy --image`: the image to ECR — the repository made when missing, a login from
//! `GetAuthorizationToken`, the blobs and manifest through the distribution API — and the
//! URI Lambda is given: the repository's, pinned to the manifest digest.

use anyhow::Result;

use crate::image::{ecr, registry::Registry, Image};

/// A pushed image.
pub struct PushedImage {
    /// `<account>.dkr.ecr.<region>.amazonaws.com/<repository>@sha256:<digest>`.
    pub uri: String,
    pub repository_created: bool,
    pub uploaded: usize,
    pub skipped: usize,
    pub bytes: u64,
}

/// The tag a push gives the image: from its digest, so pushing the same image again is
/// harmless even to a repository with immutable tags.
pub fn tag(image: &Image) -> String {
    format!("sha256-{}", &image.digest()[7..19])
}

/// `registry`: where to send the bytes instead of the account's ECR endpoint (a mirror or a
/// test registry; the credentials still come from ECR).
pub fn push(
    rt: &tokio::runtime::Runtime,
    repository: &str,
    registry: Option<&str>,
    image: &Image,
) -> Result<PushedImage> {
    let client = rt.block_on(ecr::client());
    let repo = rt.block_on(ecr::ensure_repository(&client, repository))?;
    let login = rt.block_on(ecr::login(&client))?;
    let target = registry.unwrap_or(&login.endpoint);
    let pushed = Registry::new(target, repository, Some(login.authorization))?
        .push(&image.layout, &tag(image))?;
    Ok(PushedImage {
        uri: format!("{}@{}", repo.uri, image.digest()),
        repository_created: repo.created,
        uploaded: pushed.uploaded.len(),
        skipped: pushed.skipped.len(),
        bytes: pushed.bytes,
    })
}
