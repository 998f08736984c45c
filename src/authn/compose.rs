//! [`AnyOf`] and [`AllOf`]: composing authenticators.

use super::{AuthRequest, AuthResult, Authenticated, Authenticator};
use crate::AuthError;

/// Accepts the first scheme whose credential is present.
///
/// A request that lacks `A`'s credential falls through to `B`; a request that
/// presents a bad credential to `A` is rejected, never retried with `B`.
/// Built with [`Authenticator::or`].
#[derive(Debug, Clone)]
pub struct AnyOf<A, B> {
    first: A,
    second: B,
}

impl<A, B> AnyOf<A, B> {
    /// `first`, else `second`.
    pub fn new(first: A, second: B) -> Self {
        Self { first, second }
    }
}

impl<A: Authenticator, B: Authenticator> Authenticator for AnyOf<A, B> {
    async fn authenticate(&self, req: &AuthRequest<'_>) -> AuthResult {
        match self.first.authenticate(req).await? {
            Some(found) => Ok(Some(found)),
            None => self.second.authenticate(req).await,
        }
    }
}

/// Requires every scheme. The principal is the first scheme's, with the scopes and
/// roles of both and the scheme named `"a+b"`; response metadata from both is kept.
/// Built with [`Authenticator::and`].
#[derive(Debug, Clone)]
pub struct AllOf<A, B> {
    first: A,
    second: B,
}

impl<A, B> AllOf<A, B> {
    /// Both `first` and `second`.
    pub fn new(first: A, second: B) -> Self {
        Self { first, second }
    }
}

impl<A: Authenticator, B: Authenticator> Authenticator for AllOf<A, B> {
    async fn authenticate(&self, req: &AuthRequest<'_>) -> AuthResult {
        let a = self.first.authenticate(req).await?;
        let b = self.second.authenticate(req).await?;
        match (a, b) {
            (None, None) => Ok(None),
            (Some(_), None) | (None, Some(_)) => Err(AuthError::unauthenticated(
                "missing credentials: this method needs several schemes together",
            )),
            (Some(a), Some(b)) => Ok(Some(merge(a, b))),
        }
    }
}

fn merge(a: Authenticated, b: Authenticated) -> Authenticated {
    let first = &a.principal;
    let scheme = format!("{}+{}", first.scheme(), b.principal.scheme());
    let scopes: Vec<String> = b
        .principal
        .scopes()
        .iter()
        .filter(|s| !first.has_scope(s))
        .cloned()
        .collect();
    let roles: Vec<String> = b
        .principal
        .roles()
        .iter()
        .filter(|r| !first.has_role(r))
        .cloned()
        .collect();
    // Extends the first principal, so its claims stay unparsed until a handler reads them.
    let principal = a
        .principal
        .with_scheme(scheme)
        .with_scopes(scopes)
        .with_roles(roles);
    let mut response_headers = a.response_headers;
    response_headers.extend(b.response_headers);
    Authenticated {
        principal,
        response_headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Principal;
    use crate::authn::ApiKeyAuthenticator;
    use http::HeaderMap;

    fn key_auth(header: &'static str, key: &str, who: &str) -> ApiKeyAuthenticator {
        ApiKeyAuthenticator::new().header(header).key(key, who)
    }

    fn run<A: Authenticator>(a: &A, pairs: &[(&'static str, &str)]) -> AuthResult {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        let req = AuthRequest::new("/a.B/C", &h);
        futures_lite_block_on(a.authenticate(&req))
    }

    fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn any_of_falls_through_when_absent() {
        let a = key_auth("x-a", "ka", "alice").or(key_auth("x-b", "kb", "bob"));
        let got = run(&a, &[("x-b", "kb")]).unwrap().unwrap();
        assert_eq!(got.principal.subject(), "bob");
        assert!(run(&a, &[]).unwrap().is_none());
    }

    #[test]
    fn any_of_does_not_fall_through_on_a_bad_credential() {
        let a = key_auth("x-a", "ka", "alice").or(key_auth("x-b", "kb", "bob"));
        let e = run(&a, &[("x-a", "wrong"), ("x-b", "kb")]).unwrap_err();
        assert_eq!(e, AuthError::unauthenticated("invalid API key"));
    }

    #[test]
    fn all_of_merges_scopes_and_roles_without_duplicates() {
        let a = ApiKeyAuthenticator::new().header("x-a").key_for(
            "ka",
            Principal::new("alice", "api-key").with_scopes(["read", "write"]),
        );
        let b = ApiKeyAuthenticator::new().header("x-b").key_for(
            "kb",
            Principal::new("bob", "mtls")
                .with_scopes(["write", "admin"])
                .with_roles(["ops"]),
        );
        let got = run(&a.and(b), &[("x-a", "ka"), ("x-b", "kb")])
            .unwrap()
            .unwrap()
            .principal;
        assert_eq!((got.subject(), got.scheme()), ("alice", "api-key+mtls"));
        assert_eq!(got.scopes(), &["read", "write", "admin"]);
        assert_eq!(got.roles(), &["ops"]);
    }

    #[test]
    fn all_of_needs_both() {
        let a = key_auth("x-a", "ka", "alice").and(key_auth("x-b", "kb", "bob"));
        let got = run(&a, &[("x-a", "ka"), ("x-b", "kb")]).unwrap().unwrap();
        assert_eq!(got.principal.subject(), "alice");
        assert_eq!(got.principal.scheme(), "api-key+api-key");
        let e = run(&a, &[("x-a", "ka")]).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        assert!(run(&a, &[]).unwrap().is_none());
        assert!(run(&a, &[("x-a", "ka"), ("x-b", "bad")]).is_err());
    }
}
