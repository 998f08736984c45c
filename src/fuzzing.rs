//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`): the parsers that
//! are not reachable through the public API. Not a public API; no stability promised.

use std::time::Duration;

/// Parses `body` as a JWK set fetched from `https://idp.example/jwks.json`; returns the
/// number of usable keys, or `None` when the set is refused.
pub fn parse_jwks(body: &[u8]) -> Option<usize> {
    let url = reqwest::Url::parse("https://idp.example/jwks.json").ok()?;
    crate::authn::jwt::parse_jwks(body, &url)
        .ok()
        .map(|(keys, _)| keys.len())
}

/// Parses `body` as the discovery document of issuer `https://idp.example`; returns
/// the `jwks_uri` when it is accepted.
pub fn parse_discovery(body: &[u8]) -> Option<String> {
    let url = reqwest::Url::parse("https://idp.example/.well-known/openid-configuration").ok()?;
    crate::authn::jwt::parse_discovery(body, "https://idp.example", &url, false)
        .ok()
        .map(|u| u.to_string())
}

/// The `max-age` read from `Cache-Control` values.
pub fn cache_max_age(values: &[&[u8]]) -> Option<Duration> {
    let mut headers = http::HeaderMap::new();
    for v in values {
        if let Ok(v) = http::HeaderValue::from_bytes(v) {
            headers.append(http::header::CACHE_CONTROL, v);
        }
    }
    crate::fetch::cache_max_age(&headers)
}
