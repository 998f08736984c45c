//! [`HmacAlgorithm`]: the `algorithm` parameter's names and their MACs.

use std::fmt;

use hmac::{Hmac, Mac};

/// An HMAC algorithm of the Tyk / draft-cavage HTTP signature scheme.
///
/// ```
/// use grpc_auth::authn::hmac::HmacAlgorithm;
/// assert_eq!(HmacAlgorithm::from_name("hmac-sha512"), Some(HmacAlgorithm::Sha512));
/// assert_eq!(HmacAlgorithm::Sha256.name(), "hmac-sha256");
/// assert_eq!(HmacAlgorithm::from_name("rsa-sha256"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HmacAlgorithm {
    /// `hmac-sha1`: legacy, never allowed unless listed explicitly.
    Sha1,
    /// `hmac-sha256`.
    Sha256,
    /// `hmac-sha384`.
    Sha384,
    /// `hmac-sha512` (what the Tyk demo's `hmac.sh` uses).
    Sha512,
}

impl HmacAlgorithm {
    /// Every algorithm, strongest last.
    pub const ALL: [Self; 4] = [Self::Sha1, Self::Sha256, Self::Sha384, Self::Sha512];

    /// The algorithms a verifier allows by default: all but SHA-1.
    pub const DEFAULT_ALLOWED: [Self; 3] = [Self::Sha256, Self::Sha384, Self::Sha512];

    /// The name in the `algorithm` parameter, e.g. `hmac-sha256`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "hmac-sha1",
            Self::Sha256 => "hmac-sha256",
            Self::Sha384 => "hmac-sha384",
            Self::Sha512 => "hmac-sha512",
        }
    }

    /// The algorithm named `name` (ASCII case ignored), or `None` for any other name.
    /// Unknown names are never mapped to a default (Tyk's gateway falls back to SHA-1).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// The MAC's length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// HMAC of `message` under `key` (the key's bytes as given).
    pub(crate) fn mac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
            // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
            match <M as hmac::digest::KeyInit>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(message);
                    mac.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            }
        }
        match self {
            Self::Sha1 => run::<Hmac<sha1::Sha1>>(key, message),
            Self::Sha256 => run::<Hmac<sha2::Sha256>>(key, message),
            Self::Sha384 => run::<Hmac<sha2::Sha384>>(key, message),
            Self::Sha512 => run::<Hmac<sha2::Sha512>>(key, message),
        }
    }

    /// Whether `signature` is the HMAC of `message` under `key`, compared in constant
    /// time (`hmac`'s `verify_slice`).
    pub(crate) fn verify(self, key: &[u8], message: &[u8], signature: &[u8]) -> bool {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8], sig: &[u8]) -> bool {
            match <M as hmac::digest::KeyInit>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(message);
                    mac.verify_slice(sig).is_ok()
                }
                Err(_) => false,
            }
        }
        match self {
            Self::Sha1 => run::<Hmac<sha1::Sha1>>(key, message, signature),
            Self::Sha256 => run::<Hmac<sha2::Sha256>>(key, message, signature),
            Self::Sha384 => run::<Hmac<sha2::Sha384>>(key, message, signature),
            Self::Sha512 => run::<Hmac<sha2::Sha512>>(key, message, signature),
        }
    }
}

impl fmt::Display for HmacAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
