//! The example request `local`, `deploy` and `tune` show or send: a model's
//! `sample_request` in the default manifest. Read through a view of the two keys it needs,
//! so the light xtask has it without the pack-time manifest types (`pack::manifest`
//! validates the whole file when packing).

use std::path::Path;

use serde::Deserialize;

/// A model's sample request, as the manifest names it.
pub struct ExampleRequest {
    /// The model asked (`tune` uses it).
    #[cfg_attr(not(feature = "full"), allow(dead_code))]
    pub model: String,
    /// The request as one line of JSON.
    pub request: String,
}

#[derive(Deserialize)]
struct ManifestView {
    default: Option<String>,
    #[serde(default)]
    model: Vec<ModelView>,
}

#[derive(Deserialize)]
struct ModelView {
    name: String,
    sample_request: Option<String>,
}

/// The default manifest's default model (or its only one) and its `sample_request`, if it
/// has one that reads as JSON.
pub fn default_request() -> Option<ExampleRequest> {
    request(None)
}

/// `model`'s `sample_request` in the default manifest (`None`: the default model's, or the
/// first model's), if it has one that reads as JSON.
pub fn request(model: Option<&str>) -> Option<ExampleRequest> {
    let path = crate::workspace::default_manifest();
    let view: ManifestView = toml::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
    let model = model
        .map(str::to_string)
        .or(view.default)
        .or_else(|| view.model.first().map(|m| m.name.clone()))?;
    let spec = view.model.iter().find(|m| m.name == model)?;
    // Relative paths are relative to the manifest, as in `pack-models`.
    let file = path
        .parent()?
        .join(Path::new(spec.sample_request.as_ref()?));
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).ok()?).ok()?;
    Some(ExampleRequest {
        model,
        request: value.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_model_has_an_example() {
        let example = default_request().expect("models/models.toml names a sample_request");
        assert_eq!(example.model, "breast-cancer");
        let v: serde_json::Value = serde_json::from_str(&example.request).unwrap();
        assert!(v.get("features").is_some(), "{v}");
    }
}
