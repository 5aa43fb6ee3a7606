//! Zip or image: what the manifest's models and the binary weigh against Lambda's limits
//! (250 MB unzipped for a zip, 10 GB for an image), which artifact the build needs, and why.

use model_lock::{Artifact, LockFile};

use crate::build::package::{mb, MAX_UNZIPPED};

use super::MAX_IMAGE;

/// Which artifact a build needs.
#[derive(Debug, PartialEq, Eq)]
pub enum Needed {
    Zip,
    /// With the reason a zip will not do.
    Image(String),
}

#[derive(Debug)]
pub struct Choice {
    pub needed: Needed,
    /// Code, each model and where it goes, the two totals against their limits.
    pub table: String,
}

/// `binary`: bootstrap's size (embedded models included); `support`: what an image adds
/// beside it (libraries, CA bundle, tar headers), once an image is built.
pub fn explain(binary: u64, support: Option<u64>, lock: Option<&LockFile>) -> Choice {
    let models: Vec<_> = lock.into_iter().flat_map(|l| &l.models).collect();
    let embedded: u64 = models
        .iter()
        .filter(|m| m.embedded())
        .map(|m| m.size + m.tokenizer.as_ref().map_or(0, |t| t.size))
        .sum();
    let in_image: u64 = models
        .iter()
        .filter(|m| m.artifact == Artifact::Image)
        .map(|m| m.size)
        .sum();
    let mut rows = vec![format!(
        "  {:>10}  code",
        mb(binary.saturating_sub(embedded))
    )];
    for m in &models {
        let place = match (m.artifact, m.embed) {
            (Artifact::Image, _) => "image only",
            (Artifact::Zip, true) => "in bootstrap",
            (Artifact::Zip, false) => "EFS/S3 only",
        };
        rows.push(format!("  {:>10}  model {} ({place})", mb(m.size), m.name));
    }
    let image_total = binary + support.unwrap_or(0) + in_image;
    rows.push(format!(
        "  zip   {} unzipped of Lambda's {}{}",
        mb(binary),
        mb(MAX_UNZIPPED),
        if in_image > 0 {
            " (without the image models)"
        } else {
            ""
        }
    ));
    rows.push(format!(
        "  image {}{} of Lambda's {}",
        mb(image_total),
        if support.is_none() {
            " + its libraries"
        } else {
            ""
        },
        mb(MAX_IMAGE)
    ));
    let image_models: Vec<&str> = models
        .iter()
        .filter(|m| m.artifact == Artifact::Image)
        .map(|m| m.name.as_str())
        .collect();
    let needed = if !image_models.is_empty() {
        Needed::Image(format!(
            "artifact = \"image\" for {}",
            image_models.join(", ")
        ))
    } else if binary > MAX_UNZIPPED {
        Needed::Image(format!(
            "bootstrap is {}, over Lambda's {} limit for a zip",
            mb(binary),
            mb(MAX_UNZIPPED)
        ))
    } else {
        Needed::Zip
    };
    Choice {
        needed,
        table: rows.join("\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model_lock::ModelEntry;

    fn lock(models: &[(&str, u64, Artifact)]) -> LockFile {
        let mut l = LockFile::new();
        for (name, size, artifact) in models {
            let mut e: ModelEntry = serde_json::from_value(serde_json::json!({
                "name": name, "file": format!("{name}.onnx"), "sha256": "0".repeat(64),
                "size": size, "inputs": [], "outputs": []
            }))
            .unwrap();
            e.artifact = *artifact;
            l.models.push(e);
        }
        l
    }

    #[test]
    fn the_artifact_follows_the_manifest_and_the_limits() {
        let small = lock(&[("a", 1 << 20, Artifact::Zip)]);
        let c = explain(30 << 20, Some(3 << 20), Some(&small));
        assert_eq!(c.needed, Needed::Zip);
        assert!(c.table.contains("model a (in bootstrap)"), "{}", c.table);

        let big = lock(&[
            ("a", 1 << 20, Artifact::Zip),
            ("big", 300 << 20, Artifact::Image),
        ]);
        let c = explain(30 << 20, Some(3 << 20), Some(&big));
        assert_eq!(
            c.needed,
            Needed::Image("artifact = \"image\" for big".into())
        );
        assert!(
            c.table.contains("image 333.0 MB of Lambda's 10240.0 MB"),
            "{}",
            c.table
        );

        let c = explain(260 << 20, None, None);
        assert!(
            matches!(c.needed, Needed::Image(ref why) if why.contains("over Lambda's 250.0 MB limit"))
        );
        // Before an image is built, its libraries are not counted yet, and it says so.
        assert!(
            c.table
                .contains("image 260.0 MB + its libraries of Lambda's 10240.0 MB"),
            "{}",
            c.table
        );
    }
}
