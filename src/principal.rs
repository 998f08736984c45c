//! [`Principal`]: who a request was authenticated as.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The authenticated caller, inserted into the request extensions by the layer.
///
/// Cloning is cheap (one reference count). A tonic handler reads it with
/// `request.extensions().get::<Principal>()`.
///
/// ```
/// use grpc_auth::Principal;
/// let p = Principal::new("ada", "jwt").with_scopes(["greeter.read", "greeter.write"]);
/// assert_eq!(p.subject(), "ada");
/// assert_eq!(p.scheme(), "jwt");
/// assert!(p.has_scope("greeter.write"));
/// ```
#[derive(Clone)]
pub struct Principal(Arc<Inner>);

#[derive(Clone)]
struct Inner {
    subject: String,
    scheme: Cow<'static, str>,
    scopes: Vec<String>,
    roles: Vec<String>,
    claims: Map<String, Value>,
}

impl Principal {
    /// A principal with a subject (user, service, key owner) proved by `scheme`
    /// (`"jwt"`, `"basic"`, `"api-key"`, ...).
    pub fn new(subject: impl Into<String>, scheme: impl Into<Cow<'static, str>>) -> Self {
        Self(Arc::new(Inner {
            subject: subject.into(),
            scheme: scheme.into(),
            scopes: Vec::new(),
            roles: Vec::new(),
            claims: Map::new(),
        }))
    }

    /// Adds scopes (OAuth2 `scope`/`scp`).
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Arc::make_mut(&mut self.0)
            .scopes
            .extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Adds roles.
    pub fn with_roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Arc::make_mut(&mut self.0)
            .roles
            .extend(roles.into_iter().map(Into::into));
        self
    }

    /// Sets the claims or attributes the scheme carried (a JWT's payload).
    pub fn with_claims(mut self, claims: Map<String, Value>) -> Self {
        Arc::make_mut(&mut self.0).claims = claims;
        self
    }

    /// Replaces the scheme name (used by composites: `"jwt+api-key"`).
    pub fn with_scheme(mut self, scheme: impl Into<Cow<'static, str>>) -> Self {
        Arc::make_mut(&mut self.0).scheme = scheme.into();
        self
    }

    /// The subject: a user name, a JWT `sub`, an API key's owner.
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// The scheme that proved the subject.
    pub fn scheme(&self) -> &str {
        &self.0.scheme
    }

    /// The granted scopes.
    pub fn scopes(&self) -> &[String] {
        &self.0.scopes
    }

    /// The granted roles.
    pub fn roles(&self) -> &[String] {
        &self.0.roles
    }

    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.0.scopes.iter().any(|s| s == scope)
    }

    /// Whether `role` was granted.
    pub fn has_role(&self, role: &str) -> bool {
        self.0.roles.iter().any(|r| r == role)
    }

    /// The claims as a JSON map (empty for schemes without claims): for a JWT, its
    /// whole payload, exactly as verified.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.0.claims
    }

    /// The claims deserialized into the caller's own type.
    pub fn claims_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(serde::de::value::MapDeserializer::new(
            self.0.claims.iter().map(|(k, v)| (k.as_str(), v)),
        ))
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("subject", &self.0.subject)
            .field("scheme", &self.0.scheme)
            .field("scopes", &self.0.scopes)
            .field("roles", &self.0.roles)
            .field("claims", &self.claims().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct MyClaims {
        sub: String,
        tenant: String,
    }

    #[test]
    fn typed_claims_are_reachable() {
        let mut m = Map::new();
        m.insert("sub".into(), "ada".into());
        m.insert("tenant".into(), "acme".into());
        let p = Principal::new("ada", "jwt").with_claims(m);
        let c: MyClaims = p.claims_as().expect("claims");
        assert_eq!((c.sub.as_str(), c.tenant.as_str()), ("ada", "acme"));
    }

    #[test]
    fn clones_share_and_builders_do_not_alias() {
        let a = Principal::new("ada", "jwt");
        let b = a.clone().with_roles(["admin"]);
        assert!(!a.has_role("admin"));
        assert!(b.has_role("admin"));
    }
}
