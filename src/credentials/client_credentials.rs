//! [`ClientCredentials`]: the OAuth 2.0 client-credentials grant (RFC 6749 section 4.4)
//! as a [`TokenSource`].

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::token_source::{Token, TokenError, TokenSource};
use crate::fetch::{self, FetchError, Limits};
use crate::oauth::{ClientAuth, Endpoint};

/// Tokens from an OAuth 2.0 token endpoint by the client-credentials grant, for
/// [`TokenSourceCredentials`](super::TokenSourceCredentials).
///
/// The endpoint is configured ([`builder`](Self::builder)) or read from the issuer's
/// discovery document's `token_endpoint` on first use
/// ([`builder_for_issuer`](Self::builder_for_issuer)). The client authenticates by
/// [`ClientAuth`]: `client_secret_basic`, `client_secret_post` or `private_key_jwt`.
///
/// Answers map to the client's rules: a token (`access_token`, `token_type` Bearer,
/// `expires_in`) is used until it expires; an endpoint that could not be reached,
/// timed out, answered 5xx or garbage is `UNAVAILABLE` (retried with backoff); an
/// OAuth 2.0 error (`invalid_client`, `invalid_scope`, ...; HTTP 400/401) is a refusal
/// (`UNAUTHENTICATED`), named by its `error` code. Messages never carry the secret or
/// a token. Responses are bounded (64 KiB), the call to 5 s; no redirect is followed.
///
/// ```no_run
/// use grpc_auth::credentials::{ClientCredentials, TokenSourceCredentials};
/// use grpc_auth::oauth::ClientAuth;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let auth = ClientAuth::secret_basic("billing", "s3cret");
/// let source = ClientCredentials::builder("https://idp.example/oauth/token", auth)
///     .scope("greeter.read")
///     .resource("https://greeter.example")      // RFC 8707
///     .build()?;
/// let creds = TokenSourceCredentials::new(source);
/// # let _ = creds; Ok(()) }
/// ```
pub struct ClientCredentials {
    endpoint: TokenEndpoint,
    auth: ClientAuth,
    scope: Option<String>,
    audience: Option<String>,
    resource: Vec<String>,
}

/// Builds [`ClientCredentials`]: see [`ClientCredentials::builder`].
pub struct ClientCredentialsBuilder {
    url: Where,
    auth: ClientAuth,
    scope: Option<String>,
    audience: Option<String>,
    resource: Vec<String>,
    allow_http: bool,
    root_certificates_pem: Vec<Vec<u8>>,
}

/// A token endpoint's URL, or the issuer whose discovery document names it.
enum Where {
    Url(String),
    Issuer(String),
}

impl ClientCredentials {
    /// The grant at the token endpoint `token_url` (https; plain http only to loopback
    /// unless [`allow_http`](ClientCredentialsBuilder::allow_http)), authenticated as
    /// `auth`.
    pub fn builder(token_url: impl Into<String>, auth: ClientAuth) -> ClientCredentialsBuilder {
        ClientCredentialsBuilder::new(Where::Url(token_url.into()), auth)
    }

    /// The grant at the `token_endpoint` that `issuer`'s OpenID Connect discovery
    /// document (`{issuer}/.well-known/openid-configuration`) names, read on the first
    /// fetch (a failed discovery is `UNAVAILABLE` and tried again on the next).
    pub fn builder_for_issuer(
        issuer: impl Into<String>,
        auth: ClientAuth,
    ) -> ClientCredentialsBuilder {
        ClientCredentialsBuilder::new(Where::Issuer(issuer.into()), auth)
    }
}

impl ClientCredentialsBuilder {
    fn new(url: Where, auth: ClientAuth) -> Self {
        Self {
            url,
            auth,
            scope: None,
            audience: None,
            resource: Vec::new(),
            allow_http: false,
            root_certificates_pem: Vec::new(),
        }
    }

    /// The `scope` to ask for (space-separated).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The `audience` to ask for (a parameter some providers take).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// A `resource` (RFC 8707) the token is for; repeatable.
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource.push(resource.into());
        self
    }

    /// Allows a plain `http://` token endpoint off loopback (never in production: the
    /// secret would travel in clear).
    pub fn allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Trusts these PEM root certificates besides the system's.
    pub fn root_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates_pem.push(pem.into());
        self
    }

    /// The token source; fails on a bad URL or TLS set-up.
    pub fn build(self) -> Result<ClientCredentials, TokenError> {
        let roots = &self.root_certificates_pem;
        let endpoint = match &self.url {
            Where::Url(url) => TokenEndpoint::new(url, self.allow_http, roots)?,
            Where::Issuer(issuer) => TokenEndpoint::for_issuer(issuer, self.allow_http, roots)?,
        };
        Ok(ClientCredentials {
            endpoint,
            auth: self.auth,
            scope: self.scope,
            audience: self.audience,
            resource: self.resource,
        })
    }
}

/// A token endpoint: the shared [`Endpoint`] with the limits for it (64 KiB, 5 s), and
/// the one mapping of its answers. Shared by the OAuth 2.0 token sources.
pub(crate) struct TokenEndpoint(Endpoint);

const TOKEN_LIMITS: Limits = Limits {
    connect_timeout: Duration::from_secs(3),
    timeout: Duration::from_secs(5),
    max_bytes: 64 * 1024,
};

impl TokenEndpoint {
    /// `url` (https; http only to loopback unless `allow_http`), trusting `roots` too.
    pub(crate) fn new(url: &str, allow_http: bool, roots: &[Vec<u8>]) -> Result<Self, TokenError> {
        Endpoint::fixed(url, allow_http, roots, TOKEN_LIMITS)
            .map(Self)
            .map_err(config)
    }

    /// The `token_endpoint` of `issuer`'s discovery document.
    pub(crate) fn for_issuer(
        issuer: &str,
        allow_http: bool,
        roots: &[Vec<u8>],
    ) -> Result<Self, TokenError> {
        Endpoint::discovered(issuer, "token_endpoint", allow_http, roots, TOKEN_LIMITS)
            .map(Self)
            .map_err(config)
    }

    /// The endpoint's URL for messages (a password redacted).
    pub(crate) fn shown(&self) -> String {
        self.0.shown()
    }

    /// POSTs `form`, the client authenticated by `auth`: see [`token_from`].
    pub(crate) async fn request(
        &self,
        form: &[(&str, &str)],
        auth: Option<&ClientAuth>,
        allow_na: bool,
    ) -> Result<Token, TokenError> {
        // One bound for the whole fetch, discovery included.
        let (status, body) = tokio::time::timeout(TOKEN_LIMITS.timeout, self.0.post(form, auth))
            .await
            .map_err(|_| {
                TokenError::Unavailable(format!(
                    "token endpoint {} did not answer within {} s",
                    self.shown(),
                    TOKEN_LIMITS.timeout.as_secs()
                ))
            })?
            .map_err(|e| TokenError::Unavailable(e.to_string()))?;
        token_from(status, &body, &self.shown(), allow_na)
    }
}

fn config(e: FetchError) -> TokenError {
    TokenError::Refused(e.to_string())
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default, deserialize_with = "seconds")]
    expires_in: Option<u64>,
}

/// `expires_in` as a number or a numeric string (several providers send `"3599"`).
fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seconds {
        Number(u64),
        Text(String),
    }
    Ok(match Option::<Seconds>::deserialize(d)? {
        None => None,
        Some(Seconds::Number(n)) => Some(n),
        Some(Seconds::Text(t)) => Some(
            t.trim()
                .parse()
                .map_err(|_| serde::de::Error::custom("expires_in is not a number"))?,
        ),
    })
}

/// The OAuth 2.0 error codes a refusal may name (RFC 6749 5.2, RFC 8693 2.2.2, RFC
/// 8707): anything else an endpoint says (it could echo what it was sent) is not shown.
const ERROR_CODES: [&str; 7] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
];

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
}

/// Maps a token endpoint's answer: a token until `expires_in`; an OAuth 2.0 error
/// (400/401) refused by its `error` code only; 5xx or garbage `UNAVAILABLE`. A token
/// type other than bearer is refused (`N_A` too, unless `allow_na`: RFC 8693's "not an
/// access token").
fn token_from(
    status: u16,
    body: &[u8],
    endpoint: &str,
    allow_na: bool,
) -> Result<Token, TokenError> {
    match status {
        200 => {
            let Ok(t) = serde_json::from_slice::<TokenResponse>(body) else {
                return Err(TokenError::Unavailable(format!(
                    "token endpoint {endpoint} answered no token"
                )));
            };
            let bearer = |tt: &str| {
                tt.eq_ignore_ascii_case("bearer") || (allow_na && tt.eq_ignore_ascii_case("N_A"))
            };
            if t.token_type.as_deref().is_some_and(|tt| !bearer(tt)) {
                return Err(TokenError::Refused(format!(
                    "token endpoint {endpoint} issued a token that is not a bearer token"
                )));
            }
            if t.access_token.is_empty() {
                return Err(TokenError::Unavailable(format!(
                    "token endpoint {endpoint} answered an empty token"
                )));
            }
            let expires = t
                .expires_in
                .map(|s| crate::clock::add(SystemTime::now(), Duration::from_secs(s)));
            Ok(Token::new(t.access_token, expires))
        }
        400 | 401 => {
            // Only the registered error code: a description could echo input.
            let code = serde_json::from_slice::<ErrorResponse>(body)
                .map(|e| e.error)
                .ok()
                .filter(|c| ERROR_CODES.contains(&c.as_str()))
                .unwrap_or_else(|| format!("HTTP {status}"));
            Err(TokenError::Refused(format!(
                "token endpoint {endpoint} refused: {code}"
            )))
        }
        _ => Err(TokenError::Unavailable(format!(
            "token endpoint {endpoint} answered HTTP {status}"
        ))),
    }
}

impl TokenSource for ClientCredentials {
    async fn fetch(&self) -> Result<Token, TokenError> {
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        if let Some(audience) = &self.audience {
            form.push(("audience", audience));
        }
        for r in &self.resource {
            form.push(("resource", r));
        }
        self.endpoint.request(&form, Some(&self.auth), false).await
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("url", &self.endpoint.shown())
            .field("auth", &self.auth)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ClientCredentialsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentialsBuilder")
            .field(
                "url",
                &match &self.url {
                    Where::Url(url) | Where::Issuer(url) => fetch::shown_str(url),
                },
            )
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}
