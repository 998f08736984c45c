//! The `authorization` parser: `Authorization::parse` on arbitrary text, and
//! `AuthRequest::authorization` on arbitrary metadata values (none, one or several
//! entries, with the default and a small length bound).
#![no_main]

use grpc_auth::authn::{AuthRequest, Authorization};

/// The documented default bound on a credential-bearing value (8 KiB).
const DEFAULT_MAX_VALUE_LEN: usize = 8 * 1024;
use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use libfuzzer_sys::fuzz_target;

fn is_sp(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// What every successful parse must look like. RFC 9110 whitespace is SP and HTAB
/// only: they alone separate and are trimmed (since 2b6b544; before it, `parse`
/// trimmed Unicode whitespace, so `"#\n b"` gave the scheme `"#\n"`: see
/// `regressions/authorization`).
fn check_parsed(input: &str, a: &Authorization<'_>) {
    let (scheme, credentials) = (a.scheme(), a.credentials());
    assert!(!scheme.is_empty(), "empty scheme from {input:?}");
    assert!(!credentials.is_empty(), "empty credentials from {input:?}");
    assert!(
        !scheme.contains(is_sp),
        "scheme {scheme:?} contains SP/HTAB"
    );
    assert_eq!(
        credentials,
        credentials.trim_matches(is_sp),
        "credentials not trimmed"
    );
    // Both are slices of the trimmed input: scheme first, credentials last, only
    // SP/HTAB between.
    let t = input.trim_matches(is_sp);
    assert!(
        t.starts_with(scheme) && t.ends_with(credentials),
        "{input:?}"
    );
    let between = &t[scheme.len()..t.len() - credentials.len()];
    assert!(
        !between.is_empty() && between.chars().all(is_sp),
        "separator {between:?}"
    );
    // Scheme matching ignores ASCII case only.
    assert!(a.is_scheme(scheme));
    assert!(a.is_scheme(&scheme.to_ascii_uppercase()));
    assert!(a.is_scheme(&scheme.to_ascii_lowercase()));
    // Debug never shows the credentials.
    assert_eq!(
        format!("{a:?}"),
        format!("Authorization {{ scheme: {scheme:?}, credentials: \"[redacted]\" }}")
    );
}

fuzz_target!(|data: &[u8]| {
    // 1. The parser alone, on any text.
    let text = String::from_utf8_lossy(data);
    if let Ok(a) = Authorization::parse(&text) {
        check_parsed(&text, &a);
    }

    // 2. Through `AuthRequest`: the input's lines are metadata values.
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let mut headers = HeaderMap::new();
    for line in rest.split(|&b| b == b'\n').take(3) {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(AUTHORIZATION, v);
        }
    }
    let max = if ctl & 1 == 0 {
        DEFAULT_MAX_VALUE_LEN
    } else {
        usize::from(ctl >> 1)
    };
    let req = AuthRequest::new("/a.B/C", &headers).with_max_value_len(max);
    let got = req.authorization();
    let values: Vec<&HeaderValue> = headers.get_all(AUTHORIZATION).iter().collect();
    match values.as_slice() {
        [] => assert!(matches!(got, Ok(None))),
        [v] => {
            let as_str = v.to_str().ok();
            match &got {
                Ok(Some(a)) => {
                    let s = as_str.expect("accepted a value that is not visible ASCII");
                    assert!(v.len() <= max, "accepted a value over the bound");
                    check_parsed(s, a);
                    // Metadata is ASCII: nothing but printable ASCII in the scheme.
                    assert!(a.scheme().bytes().all(|b| b.is_ascii_graphic()));
                    assert_eq!(Authorization::parse(s).ok(), Some(*a));
                }
                Ok(None) => panic!("a present value read as absent"),
                Err(e) => {
                    if let Some(s) = as_str
                        && v.len() <= max
                    {
                        assert!(Authorization::parse(s).is_err(), "{e}");
                    }
                    // The message names the problem, never the value (every fixed
                    // message is shorter than 64 bytes).
                    let msg = e.to_string();
                    if let Some(s) = as_str
                        && s.len() > 64
                    {
                        assert!(!msg.contains(s), "{msg:?} echoes the value");
                    }
                }
            }
        }
        _ => assert!(got.is_err(), "several authorization entries accepted"),
    }
});
