//! OpenID Connect discovery documents (`fuzzing::parse_discovery`, issuer
//! `https://idp.example`, fetched over https) and `Cache-Control` max-age reading
//! (`fuzzing::cache_max_age`, one value per input line).
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;

#[derive(serde::Deserialize)]
struct Doc {
    issuer: Option<String>,
    jwks_uri: Option<String>,
}

const ISSUER: &str = "https://idp.example";

/// `max-age` per the rules: the smallest of the `max-age=N` (N a u64, quotes and
/// spaces around it ignored), `no-store` and `no-cache` count as 0; `None` if none.
fn expected_max_age(values: &[&[u8]]) -> Option<Duration> {
    let mut min: Option<u64> = None;
    for v in values {
        let Ok(v) = http::HeaderValue::from_bytes(v) else {
            continue;
        };
        let Ok(v) = v.to_str() else { continue };
        for d in v.split(',') {
            let (name, arg) = match d.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (d.trim(), None),
            };
            let age =
                if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                    Some(0)
                } else if name.eq_ignore_ascii_case("max-age") {
                    arg.and_then(|a| a.parse::<u64>().ok())
                } else {
                    None
                };
            if let Some(age) = age {
                min = Some(min.map_or(age, |m| m.min(age)));
            }
        }
    }
    min.map(Duration::from_secs)
}

fuzz_target!(|data: &[u8]| {
    if let Some(uri) = grpc_auth::fuzzing::parse_discovery(data) {
        // Read as the two fields it needs (serde_json tolerates in ignored fields
        // what a full `Value` would refuse, e.g. a lone surrogate escape).
        let doc: Doc = serde_json::from_slice(data).expect("accepted a document that is not JSON");
        assert_eq!(doc.issuer.as_deref(), Some(ISSUER), "issuer");
        assert!(doc.jwks_uri.is_some(), "jwks_uri");
        // Fetched over https: the keys must be too.
        assert!(uri.starts_with("https://"), "jwks_uri {uri:?} is not https");
        assert!(uri.len() > "https://".len());
    }
    let values: Vec<&[u8]> = data.split(|&b| b == b'\n').take(8).collect();
    assert_eq!(
        grpc_auth::fuzzing::cache_max_age(&values),
        expected_max_age(&values)
    );
});
