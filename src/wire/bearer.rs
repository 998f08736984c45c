//! `authorization: Bearer <token>` (RFC 6750 section 2.1).

use http::HeaderValue;
use zeroize::Zeroizing;

/// `Bearer <token>` as a sensitive metadata value; `None` when the token holds bytes a
/// metadata value cannot.
pub(crate) fn value(token: &[u8]) -> Option<HeaderValue> {
    let mut v = Zeroizing::new(Vec::with_capacity(7 + token.len()));
    v.extend_from_slice(b"Bearer ");
    v.extend_from_slice(token);
    let mut value = HeaderValue::from_bytes(&v).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// The token of a `Bearer <token>` value (the scheme matched ignoring ASCII case).
pub(crate) fn token(value: &str) -> Option<&str> {
    let value = value.trim_matches([' ', '\t']);
    let (scheme, token) = value.split_at_checked(7)?;
    let token = token.trim_matches([' ', '\t']);
    (scheme.eq_ignore_ascii_case("Bearer ") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_and_token_round_trip() {
        let v = value(b"abc.def").unwrap();
        assert!(v.is_sensitive());
        assert_eq!(token(v.to_str().unwrap()), Some("abc.def"));
        assert_eq!(token("bearer  xyz "), Some("xyz"));
        assert_eq!(token("Bearer "), None);
        assert_eq!(token("Basic abc"), None);
        assert!(value(b"bad\nvalue").is_none());
    }
}
