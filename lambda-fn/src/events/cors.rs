//! CORS for API Gateway integrations that pass browser requests through to the function: the
//! preflight (`OPTIONS`) is answered here, and every HTTP answer carries the allowed origin. A
//! Function URL with a CORS config answers preflights itself and sets these headers over ours.

use http::{HeaderMap, HeaderValue};

/// What a browser may send: JSON, and the headers of a SigV4-signed call.
const ALLOW_HEADERS: &str =
    "content-type, authorization, x-amz-date, x-amz-security-token, x-amz-content-sha256";
const ALLOW_METHODS: &str = "GET, POST, OPTIONS";
/// How long a browser may cache a preflight answer, in seconds.
const MAX_AGE: &str = "600";

/// The origins a browser may call from (`MODEL_CORS_ORIGIN`).
#[derive(Debug, Clone, Default)]
pub struct Cors {
    origins: Vec<String>,
}

impl Cors {
    pub fn new(origins: Vec<String>) -> Self {
        Cors { origins }
    }

    /// The `Access-Control-Allow-Origin` for a request from `origin`: `*` when any origin
    /// may call, the origin itself when it is listed, none otherwise.
    fn allowed(&self, origin: Option<&str>) -> Option<HeaderValue> {
        if self.origins.iter().any(|o| o == "*") {
            return Some(HeaderValue::from_static("*"));
        }
        let origin = origin?;
        self.origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
            .then(|| HeaderValue::from_str(origin).ok())
            .flatten()
    }

    /// Adds the CORS headers an answer to a request from `origin` carries; a preflight also
    /// gets the methods, headers and cache time.
    pub fn add_headers(&self, headers: &mut HeaderMap, origin: Option<&str>, preflight: bool) {
        let Some(allowed) = self.allowed(origin) else {
            return;
        };
        if allowed != "*" {
            // The answer depends on the Origin header: caches must key on it.
            headers.insert("vary", HeaderValue::from_static("origin"));
        }
        headers.insert("access-control-allow-origin", allowed);
        if preflight {
            headers.insert(
                "access-control-allow-methods",
                HeaderValue::from_static(ALLOW_METHODS),
            );
            headers.insert(
                "access-control-allow-headers",
                HeaderValue::from_static(ALLOW_HEADERS),
            );
            headers.insert("access-control-max-age", HeaderValue::from_static(MAX_AGE));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cors: &Cors, origin: Option<&str>, preflight: bool) -> HeaderMap {
        let mut h = HeaderMap::new();
        cors.add_headers(&mut h, origin, preflight);
        h
    }

    #[test]
    fn listed_origins_are_echoed_and_others_get_nothing() {
        let cors = Cors::new(vec!["https://app.example.com".into()]);
        let h = headers(&cors, Some("https://app.example.com"), false);
        assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
        assert_eq!(h["vary"], "origin");
        assert!(h.get("access-control-allow-methods").is_none());
        assert!(headers(&cors, Some("https://evil.example.com"), true).is_empty());
        assert!(headers(&cors, None, true).is_empty());
        assert!(headers(&Cors::default(), Some("https://app.example.com"), true).is_empty());
    }

    #[test]
    fn any_origin_and_the_preflight_headers() {
        let h = headers(
            &Cors::new(vec!["*".into()]),
            Some("https://x.example"),
            true,
        );
        assert_eq!(h["access-control-allow-origin"], "*");
        assert!(h.get("vary").is_none());
        assert_eq!(h["access-control-allow-methods"], ALLOW_METHODS);
        assert!(h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("content-type"));
        assert_eq!(h["access-control-max-age"], MAX_AGE);
    }
}
