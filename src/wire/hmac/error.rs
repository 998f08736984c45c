//! [`HmacError`]: which part of an HMAC signature failed.

use std::borrow::Cow;
use std::time::Duration;

use super::HmacAlgorithm;
use crate::AuthError;

/// Why an HMAC signature was refused. Each message names the failing part, never a
/// secret or a signature.
///
/// [`is_malformed`](Self::is_malformed) separates requests that are not well-formed
/// (an HTTP front end answers 400) from well-formed ones that fail verification (401).
/// Every variant becomes `UNAUTHENTICATED`, except [`KeyStore`](Self::KeyStore),
/// [`ReplayCacheFull`](Self::ReplayCacheFull) and [`ReplayStore`](Self::ReplayStore) (`UNAVAILABLE`: the server could not
/// check, the caller did nothing wrong; see [`is_unavailable`](Self::is_unavailable)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HmacError {
    /// No `authorization` metadata at all.
    #[error("missing authorization metadata")]
    MissingAuthorization,
    /// `authorization` uses another scheme than `Signature`.
    #[error("authorization is not an HMAC Signature")]
    NotSignature,
    /// A metadata entry the signature needs is repeated.
    #[error("multiple {0} metadata entries")]
    Repeated(String),
    /// A metadata entry the signature needs is longer than the configured bound.
    #[error("{name} metadata exceeds {max} bytes")]
    Oversized {
        /// The entry's name.
        name: String,
        /// The bound in bytes.
        max: usize,
    },
    /// A metadata entry the signature needs is not visible ASCII.
    #[error("{0} metadata is not valid ASCII")]
    NotAscii(String),
    /// The `Signature` parameters do not parse.
    #[error("malformed HMAC Signature: {0}")]
    Malformed(Cow<'static, str>),
    /// A parameter appears twice.
    #[error("malformed HMAC Signature: duplicate parameter {0}")]
    DuplicateParameter(String),
    /// A parameter other than keyId, algorithm, headers, signature.
    #[error("malformed HMAC Signature: unknown parameter {0}")]
    UnknownParameter(String),
    /// keyId, algorithm or signature is missing.
    #[error("malformed HMAC Signature: missing parameter {0}")]
    MissingParameter(&'static str),
    /// The signature is not base64 (plain or URL-encoded).
    #[error("malformed HMAC Signature: signature is not base64")]
    SignatureEncoding,
    /// The algorithm name is not an HMAC algorithm this crate knows.
    #[error("unsupported HMAC algorithm")]
    UnsupportedAlgorithm,
    /// A known algorithm that is not on the verifier's allow-list (SHA-1 by default).
    #[error("HMAC algorithm {0} is not allowed")]
    AlgorithmNotAllowed(HmacAlgorithm),
    /// A header the verifier requires is not in the signed set.
    #[error("HMAC signature does not cover {0}")]
    HeaderNotSigned(String),
    /// A header listed in `headers` is not in the request.
    #[error("signed header {0} is absent")]
    HeaderAbsent(String),
    /// The `date` (or `x-aux-date`) metadata is absent.
    #[error("missing date metadata")]
    MissingDate,
    /// The date is not an HTTP date (IMF-fixdate).
    #[error("date metadata is not an HTTP date")]
    BadDate,
    /// The date is further from the verifier's clock than the allowed skew.
    #[error("date is outside the allowed clock skew of {} s", .0.as_secs())]
    DateOutsideWindow(Duration),
    /// No secret for the key id.
    #[error("unknown HMAC key id")]
    UnknownKey,
    /// The signature does not match.
    #[error("HMAC signature mismatch")]
    BadSignature,
    /// The same signature was already accepted within the window.
    #[error("HMAC signature already used (replay)")]
    Replay,
    /// The replay cache is full of signatures whose dates are still inside the skew
    /// window: this one cannot be remembered, so it is refused (retry later).
    #[error("HMAC replay cache full")]
    ReplayCacheFull,
    /// The key store failed (a database or a remote lookup).
    #[error("HMAC key store unavailable: {0}")]
    KeyStore(Cow<'static, str>),
    /// The replay store (Redis, shared by replicas) could not say whether the signature
    /// was seen: it is refused (retry later).
    #[error("HMAC replay check unavailable: {0}")]
    ReplayStore(Cow<'static, str>),
}

impl HmacError {
    /// Whether the request is not well-formed: a missing, repeated, oversized or
    /// unparsable header or date, or an unsupported or disallowed algorithm (an HTTP
    /// front end answers 400). The rest (unknown key, mismatch, skew, replay, a required
    /// header left unsigned, the store failing) are verification failures (401).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            Self::MissingAuthorization
                | Self::NotSignature
                | Self::Repeated(_)
                | Self::Oversized { .. }
                | Self::NotAscii(_)
                | Self::Malformed(_)
                | Self::DuplicateParameter(_)
                | Self::UnknownParameter(_)
                | Self::MissingParameter(_)
                | Self::SignatureEncoding
                | Self::UnsupportedAlgorithm
                | Self::AlgorithmNotAllowed(_)
                | Self::HeaderAbsent(_)
                | Self::MissingDate
                | Self::BadDate
        )
    }
}

impl HmacError {
    /// Whether the check could not be made (the key store failed, or the replay cache
    /// is full of live signatures): `UNAVAILABLE`, 503 at an HTTP front end.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::KeyStore(_) | Self::ReplayCacheFull | Self::ReplayStore(_)
        )
    }
}

impl From<HmacError> for AuthError {
    fn from(e: HmacError) -> Self {
        match e {
            HmacError::MissingAuthorization => AuthError::Missing,
            HmacError::KeyStore(_) | HmacError::ReplayCacheFull | HmacError::ReplayStore(_) => {
                AuthError::unavailable(e.to_string())
            }
            e => AuthError::unauthenticated(e.to_string()),
        }
    }
}
