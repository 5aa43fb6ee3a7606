/// Human-readable form of the rule, for error messages.
pub const MODEL_NAME_RULE: &str = "[a-z0-9][a-z0-9._-]{0,63}";

/// Model names end up in file names and S3 keys, so they are restricted to a small
/// alphabet that cannot express a path (`/`, `..` as a whole component needs a leading
/// dot, which the first character forbids).
pub fn validate_model_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 64
        && matches!(bytes[0], b'a'..=b'z' | b'0'..=b'9')
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        // A caller's string: quoted short, so a huge name cannot make a huge error.
        let shown: String = name.chars().take(64).collect();
        let more = if shown.len() < name.len() { "…" } else { "" };
        Err(format!(
            "model name {shown:?}{more} does not match {MODEL_NAME_RULE}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        for good in ["a", "breast-cancer", "minilm.l3_v2", "0"] {
            assert!(validate_model_name(good).is_ok(), "{good}");
        }
        let long = "a".repeat(65);
        for bad in [
            "",
            "A",
            "-x",
            ".x",
            "../etc",
            "a/b",
            "a%2f",
            "a b",
            long.as_str(),
        ] {
            assert!(validate_model_name(bad).is_err(), "{bad}");
        }
    }
}
