//! The HMAC request-signature format (Tyk / draft-cavage HTTP Signatures) that the
//! client's [`HmacSigner`](crate::credentials::HmacSigner) writes and the server's
//! [`HmacVerifier`](crate::authn::hmac::HmacVerifier) reads: the algorithms, the
//! `Signature` parameters, the signing string and the signature's encodings.

mod algorithm;
mod error;
mod params;

pub use algorithm::HmacAlgorithm;
pub use error::HmacError;
pub(crate) use params::{
    REQUEST_TARGET, decode_signature, encode_signature, parse_params, push_line,
    push_request_target,
};
