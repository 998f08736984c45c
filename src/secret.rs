//! [`Secret`]: bytes that must not leak through logs or timing.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A secret value (password, API key, token, signing key).
///
/// Its `Debug` prints `Secret([redacted])`, its memory is zeroed on drop, and
/// [`Secret::ct_eq`] compares in constant time.
///
/// ```
/// use grpc_auth::Secret;
/// let s = Secret::new("hunter2");
/// assert_eq!(format!("{s:?}"), "Secret([redacted])");
/// assert!(s.ct_eq(b"hunter2"));
/// assert!(!s.ct_eq(b"hunter3"));
/// ```
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

/// Constant-time, as [`Secret::ct_eq`].
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other.expose())
    }
}

impl Eq for Secret {}

impl Secret {
    /// Wraps the given bytes.
    pub fn new(value: impl Into<Vec<u8>>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The secret's bytes. Use only where the secret must be sent or fed to a MAC.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Compares with `other` in time that depends only on the lengths (a length
    /// mismatch answers at once: the length of an API key or token is not secret;
    /// passwords are compared by digest, which hides it).
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        self.0.as_slice().ct_eq(other).into()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A metadata map shown as its keys, each value `[redacted]`: any value may carry a
/// credential, and values received by h2 are never marked sensitive.
pub(crate) struct RedactedHeaders<'a>(pub(crate) &'a http::HeaderMap);

impl fmt::Debug for RedactedHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, _)| (k.as_str(), "[redacted]")))
            .finish()
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self::new(s.as_bytes())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self::new(s.into_bytes())
    }
}

impl From<Vec<u8>> for Secret {
    fn from(v: Vec<u8>) -> Self {
        Self::new(v)
    }
}

impl From<&[u8]> for Secret {
    fn from(v: &[u8]) -> Self {
        Self::new(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::from("top-secret-value");
        let shown = format!("{s:?} {s:#?}");
        assert!(!shown.contains("top-secret"), "{shown}");
    }

    #[test]
    fn eq_is_the_constant_time_comparison() {
        assert_eq!(Secret::from("abc"), Secret::from("abc"));
        assert_ne!(Secret::from("abc"), Secret::from("abd"));
        assert_ne!(Secret::from("abc"), Secret::from("abcd"));
    }

    #[test]
    fn ct_eq_requires_same_length_and_bytes() {
        let s = Secret::from("abc");
        assert!(s.ct_eq(b"abc"));
        assert!(!s.ct_eq(b"abcd"));
        assert!(!s.ct_eq(b"ab"));
        assert!(!s.ct_eq(b"abd"));
    }
}
