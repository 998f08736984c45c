//! [`TokenExchangeSource`]: OAuth 2.0 token exchange (RFC 8693; grpc-go's STS
//! credentials, gRFC L53) as a [`TokenSource`].

use std::fmt;

use super::client_credentials::TokenEndpoint;
use super::token_source::{Token, TokenError, TokenSource};
use crate::fetch;
use crate::oauth::ClientAuth;

/// RFC 8693's grant type.
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// Default subject token type: a JWT.
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// Exchanges a subject token (from another [`TokenSource`]: a token file, client
/// credentials, ...) for an access token at a security token service, for
/// [`TokenSourceCredentials`](super::TokenSourceCredentials).
///
/// The request: `grant_type` token-exchange, `subject_token` and `subject_token_type`
/// (default `urn:ietf:params:oauth:token-type:jwt`), and the `audience`, `resource`,
/// `scope` and `requested_token_type` set; the client authenticates when credentials
/// are given. The answer maps as for [`ClientCredentials`](super::ClientCredentials)
/// (a `token_type` of `N_A`, RFC 8693's "not an access token", is used as a bearer
/// too); the subject source's own errors pass through.
///
/// ```no_run
/// use grpc_auth::credentials::{FileTokenSource, TokenExchangeSource, TokenSourceCredentials};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let subject = FileTokenSource::new("/var/run/secrets/tokens/sa-token");
/// let sts = TokenExchangeSource::builder("https://sts.example/v1/token", subject)
///     .audience("greeter.example")
///     .build()?;
/// let creds = TokenSourceCredentials::new(sts);
/// # let _ = creds; Ok(()) }
/// ```
pub struct TokenExchangeSource<S> {
    subject: S,
    endpoint: TokenEndpoint,
    params: Params,
}

struct Params {
    subject_token_type: String,
    audience: Option<String>,
    resource: Vec<String>,
    scope: Option<String>,
    requested_token_type: Option<String>,
    client: Option<ClientAuth>,
}

/// Builds a [`TokenExchangeSource`]: see [`TokenExchangeSource::builder`].
pub struct TokenExchangeSourceBuilder<S> {
    subject: S,
    url: String,
    params: Params,
    allow_http: bool,
    root_certificates_pem: Vec<Vec<u8>>,
}

impl<S: TokenSource> TokenExchangeSource<S> {
    /// Exchanges `subject`'s tokens at `token_url` (https; plain http only to loopback
    /// unless [`allow_http`](TokenExchangeSourceBuilder::allow_http)).
    pub fn builder(token_url: impl Into<String>, subject: S) -> TokenExchangeSourceBuilder<S> {
        TokenExchangeSourceBuilder {
            subject,
            url: token_url.into(),
            params: Params {
                subject_token_type: JWT_TYPE.to_owned(),
                audience: None,
                resource: Vec::new(),
                scope: None,
                requested_token_type: None,
                client: None,
            },
            allow_http: false,
            root_certificates_pem: Vec::new(),
        }
    }
}

impl<S: TokenSource> TokenExchangeSourceBuilder<S> {
    /// The subject token's type (default `urn:ietf:params:oauth:token-type:jwt`).
    pub fn subject_token_type(mut self, uri: impl Into<String>) -> Self {
        self.params.subject_token_type = uri.into();
        self
    }

    /// The `audience` of the token to issue.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.params.audience = Some(audience.into());
        self
    }

    /// A `resource` the token is for; repeatable.
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.params.resource.push(resource.into());
        self
    }

    /// The `scope` to ask for.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.params.scope = Some(scope.into());
        self
    }

    /// The `requested_token_type`.
    pub fn requested_token_type(mut self, uri: impl Into<String>) -> Self {
        self.params.requested_token_type = Some(uri.into());
        self
    }

    /// Authenticates the client to the token service (by default it does not).
    pub fn client(mut self, auth: ClientAuth) -> Self {
        self.params.client = Some(auth);
        self
    }

    /// Allows a plain `http://` endpoint off loopback (never in production).
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
    pub fn build(self) -> Result<TokenExchangeSource<S>, TokenError> {
        Ok(TokenExchangeSource {
            endpoint: TokenEndpoint::new(&self.url, self.allow_http, &self.root_certificates_pem)?,
            subject: self.subject,
            params: self.params,
        })
    }
}

impl<S: TokenSource> TokenSource for TokenExchangeSource<S> {
    async fn fetch(&self) -> Result<Token, TokenError> {
        let subject = self.subject.fetch().await?;
        let subject_token = String::from_utf8_lossy(subject.value().expose()).into_owned();
        let subject_token = zeroize::Zeroizing::new(subject_token);
        let p = &self.params;
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", GRANT_TYPE),
            ("subject_token", &subject_token),
            ("subject_token_type", &p.subject_token_type),
        ];
        if let Some(a) = &p.audience {
            form.push(("audience", a));
        }
        for r in &p.resource {
            form.push(("resource", r));
        }
        if let Some(s) = &p.scope {
            form.push(("scope", s));
        }
        if let Some(t) = &p.requested_token_type {
            form.push(("requested_token_type", t));
        }
        self.endpoint.request(&form, p.client.as_ref(), true).await
    }
}

impl<S> fmt::Debug for TokenExchangeSource<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenExchangeSource")
            .field("url", &self.endpoint.shown())
            .field("audience", &self.params.audience)
            .finish_non_exhaustive()
    }
}

impl<S> fmt::Debug for TokenExchangeSourceBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenExchangeSourceBuilder")
            .field("url", &fetch::shown_str(&self.url))
            .finish_non_exhaustive()
    }
}
