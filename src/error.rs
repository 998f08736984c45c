//! [`AuthError`]: why a request was refused, and the one place it becomes a gRPC status.

use std::borrow::Cow;

use tonic::{Code, Status};

/// Why authentication or authorization failed.
///
/// Every variant maps to exactly one gRPC code in [`AuthError::code`]. Messages are
/// shown to the caller, so they name what is wrong and never contain a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credential was presented where one is required: `UNAUTHENTICATED`.
    #[error("missing authorization metadata")]
    Missing,
    /// The credential is malformed, invalid, expired or unknown: `UNAUTHENTICATED`.
    #[error("{0}")]
    Unauthenticated(Cow<'static, str>),
    /// The credential is not in a form this scheme reads (an opaque bearer token to the
    /// JWT scheme): `UNAUTHENTICATED` when it is the last word, but in
    /// [`a.or(b)`](crate::Authenticator::or) the other scheme may still claim it.
    #[error("{0}")]
    Unrecognized(Cow<'static, str>),
    /// Authenticated, but not allowed to call the method: `PERMISSION_DENIED`.
    #[error("{0}")]
    PermissionDenied(Cow<'static, str>),
    /// A dependency of the authenticator (key server, user store) failed, or the
    /// check could not be made now: `UNAVAILABLE`.
    #[error("{0}")]
    Unavailable(Cow<'static, str>),
    /// The caller is rate limited (too many failed logins): `RESOURCE_EXHAUSTED`.
    #[error("{0}")]
    ResourceExhausted(Cow<'static, str>),
}

impl AuthError {
    /// An `UNAUTHENTICATED` error with `message`.
    pub fn unauthenticated(message: impl Into<Cow<'static, str>>) -> Self {
        Self::Unauthenticated(message.into())
    }

    /// An [`Unrecognized`](Self::Unrecognized) error with `message`: refused unless
    /// another scheme of an [`or`](crate::Authenticator::or) claims the credential.
    pub fn unrecognized(message: impl Into<Cow<'static, str>>) -> Self {
        Self::Unrecognized(message.into())
    }

    /// A `PERMISSION_DENIED` error with `message`.
    pub fn permission_denied(message: impl Into<Cow<'static, str>>) -> Self {
        Self::PermissionDenied(message.into())
    }

    /// An `UNAVAILABLE` error with `message`.
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::Unavailable(message.into())
    }

    /// A `RESOURCE_EXHAUSTED` error with `message`.
    pub fn resource_exhausted(message: impl Into<Cow<'static, str>>) -> Self {
        Self::ResourceExhausted(message.into())
    }

    /// The gRPC code this error is answered with.
    pub fn code(&self) -> Code {
        match self {
            Self::Missing | Self::Unauthenticated(_) | Self::Unrecognized(_) => {
                Code::Unauthenticated
            }
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::Unavailable(_) => Code::Unavailable,
            Self::ResourceExhausted(_) => Code::ResourceExhausted,
        }
    }

    /// The gRPC status this error is answered with.
    pub fn to_status(&self) -> Status {
        Status::new(self.code(), self.to_string())
    }
}

impl From<AuthError> for Status {
    fn from(e: AuthError) -> Self {
        e.to_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_maps_to_its_grpc_code() {
        assert_eq!(AuthError::Missing.code(), Code::Unauthenticated);
        assert_eq!(
            AuthError::unauthenticated("x").code(),
            Code::Unauthenticated
        );
        assert_eq!(
            AuthError::permission_denied("x").code(),
            Code::PermissionDenied
        );
        assert_eq!(AuthError::unavailable("x").code(), Code::Unavailable);
        assert_eq!(
            AuthError::resource_exhausted("x").code(),
            Code::ResourceExhausted
        );
        let s = AuthError::permission_denied("missing scope: a").to_status();
        assert_eq!(
            (s.code(), s.message()),
            (Code::PermissionDenied, "missing scope: a")
        );
    }
}
