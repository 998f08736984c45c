//! [`AnyOf`] and [`AllOf`]: composing authenticators.

use super::request::Reads;
use super::{AuthRequest, AuthResult, Authenticated, Authenticator};
use crate::AuthError;

/// Accepts a request when one scheme authenticates it and no credential it carries
/// is bad.
///
/// A request that lacks `A`'s credential falls through to `B`. A request that presents
/// a bad credential to either scheme is rejected, whatever the order: when `A`
/// accepts, `B` still judges the request, with the entries `A` accepted hidden
/// ([`Authenticated::credentials`]), so a valid bearer cannot carry a wrong or repeated
/// `x-api-key` past the check. The principal is the first accepting scheme's.
///
/// One refusal is not final: [`AuthError::Unrecognized`], a credential in a form the
/// scheme does not read. The JWT scheme says so of a bearer token that is not a JWT,
/// so `jwt.or(introspection)` verifies JWTs locally and gives every other bearer
/// token to the introspection endpoint. When no scheme claims it, the refusal stands.
/// Built with [`Authenticator::or`].
#[derive(Debug, Clone)]
pub struct AnyOf<A, B> {
    first: A,
    second: B,
}

impl<A, B> AnyOf<A, B> {
    /// `first`, else `second`; both must accept what they find.
    pub(crate) fn new(first: A, second: B) -> Self {
        Self { first, second }
    }
}

impl<A: Authenticator, B: Authenticator> Authenticator for AnyOf<A, B> {
    async fn authenticate(&self, req: &AuthRequest<'_>) -> AuthResult {
        let first = match judged(&self.first, req).await {
            Ok(first) => first,
            // Not `A`'s form (an opaque token to the JWT scheme): `B` may claim it, and
            // if `B` does not read it either, `A`'s refusal stands. When `B` accepts, `A`
            // judges again what `B`'s acceptance did not cover: anything `A` still finds
            // (the same unread token, a wrong key) is refused.
            Err(e @ AuthError::Unrecognized(_)) => {
                let mut found = match judged(&self.second, req).await {
                    Ok(Some(found)) => found,
                    Ok(None) | Err(AuthError::Unrecognized(_)) => return Err(e),
                    Err(other) => return Err(other),
                };
                let again = {
                    let claimed = req.claim(found.credentials());
                    judged(&self.first, &req.claiming(&claimed)).await?
                };
                if let Some(also) = again {
                    found.absorb_credentials(also.credentials);
                }
                return Ok(Some(found));
            }
            Err(e) => return Err(e),
        };
        let Some(mut found) = first else {
            return judged(&self.second, req).await;
        };
        let also = {
            let claimed = req.claim(found.credentials());
            judged(&self.second, &req.claiming(&claimed)).await?
        };
        if let Some(also) = also {
            found.absorb_credentials(also.credentials);
        }
        Ok(Some(found))
    }
}

/// `auth`'s outcome, where an acceptance that names no credential names the entries
/// the scheme read (what it judged). Only the accepting scheme's own reads count.
async fn judged<A: Authenticator>(auth: &A, req: &AuthRequest<'_>) -> AuthResult {
    let reads = Reads::default();
    let outcome = auth.authenticate(&req.recording(&reads)).await?;
    Ok(outcome.map(|mut found| {
        if found.credentials().is_empty() {
            for name in reads.taken() {
                found = found.with_credential(name);
            }
        }
        found
    }))
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
    pub(crate) fn new(first: A, second: B) -> Self {
        Self { first, second }
    }
}

impl<A: Authenticator, B: Authenticator> Authenticator for AllOf<A, B> {
    async fn authenticate(&self, req: &AuthRequest<'_>) -> AuthResult {
        let a = judged(&self.first, req).await?;
        let b = judged(&self.second, req).await?;
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
    let response_headers = match (a.response_headers, b.response_headers) {
        (Some(mut a), Some(b)) => {
            a.extend(*b);
            Some(a)
        }
        (a, b) => a.or(b),
    };
    let mut merged = Authenticated {
        principal,
        response_headers,
        credentials: a.credentials,
    };
    merged.absorb_credentials(b.credentials);
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Principal;
    use crate::authn::ApiKeyAuthenticator;
    use http::HeaderMap;

    fn key_auth(header: &'static str, key: &str, who: &str) -> ApiKeyAuthenticator {
        ApiKeyAuthenticator::new()
            .header(http::HeaderName::from_static(header))
            .key(key, who)
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
    fn any_of_refuses_a_bad_credential_beside_a_valid_one_in_either_order() {
        let a = || key_auth("x-a", "ka", "alice");
        let b = || key_auth("x-b", "kb", "bob");
        for auth in [a().or(b()).boxed(), b().or(a()).boxed()] {
            assert_eq!(
                run(&auth, &[("x-a", "ka"), ("x-b", "wrong")]).unwrap_err(),
                AuthError::unauthenticated("invalid API key")
            );
            assert_eq!(
                run(&auth, &[("x-a", "ka"), ("x-b", "KB")]).unwrap_err(),
                AuthError::unauthenticated("invalid API key"),
                "case-changed"
            );
            assert_eq!(
                run(&auth, &[("x-a", "ka"), ("x-b", "kb"), ("x-b", "kb")]).unwrap_err(),
                AuthError::unauthenticated("multiple x-b metadata entries")
            );
            // Both valid: accepted, as the first scheme that accepted.
            let got = run(&auth, &[("x-a", "ka"), ("x-b", "kb")])
                .unwrap()
                .unwrap();
            assert_eq!(got.credentials().len(), 2);
        }
    }

    #[test]
    fn any_of_lets_the_owner_of_a_shared_entry_judge_it() {
        // Two schemes read one header: the key the first accepts is not judged again
        // by the second, which does not know it.
        let auth = key_auth("x-a", "k1", "one").or(key_auth("x-a", "k2", "two"));
        let got = run(&auth, &[("x-a", "k1")]).unwrap().unwrap();
        assert_eq!(got.principal.subject(), "one");
        assert_eq!(got.credentials(), &[http::HeaderName::from_static("x-a")]);
    }

    #[test]
    fn any_of_does_not_fall_through_on_a_bad_credential() {
        let a = key_auth("x-a", "ka", "alice").or(key_auth("x-b", "kb", "bob"));
        let e = run(&a, &[("x-a", "wrong"), ("x-b", "kb")]).unwrap_err();
        assert_eq!(e, AuthError::unauthenticated("invalid API key"));
    }

    #[test]
    fn all_of_merges_scopes_and_roles_without_duplicates() {
        let a = ApiKeyAuthenticator::new()
            .header(http::HeaderName::from_static("x-a"))
            .key_for(
                "ka",
                Principal::new("alice", "api-key").with_scopes(["read", "write"]),
            );
        let b = ApiKeyAuthenticator::new()
            .header(http::HeaderName::from_static("x-b"))
            .key_for(
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
