//! [`ClientCredentials`]: the OAuth 2.0 client-credentials grant (RFC 6749 section 4.4)
//! as a [`TokenSource`].

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::token_source::{Token, TokenError, TokenSource};
use crate::Secret;
use crate::fetch::{self, FetchError, Limits};

/// How the client proves itself to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// HTTP Basic with the form-urlencoded id and secret (`client_secret_basic`, the
    /// default).
    #[default]
    SecretBasic,
    /// `client_id` and `client_secret` in the form (`client_secret_post`).
    SecretPost,
}

/// Tokens from an OAuth 2.0 token endpoint by the client-credentials grant, for
/// [`TokenSourceCredentials`](super::TokenSourceCredentials).
///
/// Answers map to the client's rules: a token (`access_token`, `token_type` Bearer,
/// `expires_in`) is used until it expires; an endpoint that could not be reached,
/// timed out, answered 5xx or garbage is `UNAVAILABLE` (retried with backoff); an
/// OAuth 2.0 error (`invalid_client`, `invalid_scope`, ...; HTTP 400/401) is a refusal
/// (`UNAUTHENTICATED`), named by its `error` code. Messages never carry the secret or
/// a token. Responses are bounded (64 KiB), the call to 5 s.
///
/// ```no_run
/// use grpc_auth::credentials::{ClientAuth, ClientCredentials, TokenSourceCredentials};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let source = ClientCredentials::builder("https://idp.example/oauth/token", "billing", "s3cret")
///     .scope("greeter.read")
///     .resource("https://greeter.example")      // RFC 8707
///     .auth(ClientAuth::SecretBasic)
///     .build()?;
/// let creds = TokenSourceCredentials::new(source);
/// # let _ = creds; Ok(()) }
/// ```
pub struct ClientCredentials {
    endpoint: TokenEndpoint,
    client_id: String,
    secret: Secret,
    auth: ClientAuth,
    scope: Option<String>,
    audience: Option<String>,
    resource: Vec<String>,
}

/// Builds [`ClientCredentials`]: see [`ClientCredentials::builder`].
pub struct ClientCredentialsBuilder {
    url: String,
    client_id: String,
    secret: Secret,
    auth: ClientAuth,
    scope: Option<String>,
    audience: Option<String>,
    resource: Vec<String>,
    allow_http: bool,
    root_certificates_pem: Vec<Vec<u8>>,
}

impl ClientCredentials {
    /// The grant at the token endpoint `token_url` (https; plain http only to loopback
    /// unless [`allow_http`](ClientCredentialsBuilder::allow_http)) as `client_id`.
    pub fn builder(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
    ) -> ClientCredentialsBuilder {
        ClientCredentialsBuilder {
            url: token_url.into(),
            client_id: client_id.into(),
            secret: client_secret.into(),
            auth: ClientAuth::default(),
            scope: None,
            audience: None,
            resource: Vec::new(),
            allow_http: false,
            root_certificates_pem: Vec::new(),
        }
    }
}

impl ClientCredentialsBuilder {
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

    /// How the client authenticates (default `client_secret_basic`).
    pub fn auth(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
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
        Ok(ClientCredentials {
            endpoint: TokenEndpoint::new(&self.url, self.allow_http, &self.root_certificates_pem)?,
            client_id: self.client_id,
            secret: self.secret,
            auth: self.auth,
            scope: self.scope,
            audience: self.audience,
            resource: self.resource,
        })
    }
}

/// A token endpoint: the crate's HTTP client (fetch.rs) with the limits for it (64 KiB,
/// 5 s), and the one mapping of its answers. Shared by the OAuth 2.0 token sources.
pub(crate) struct TokenEndpoint {
    client: reqwest::Client,
    url: reqwest::Url,
    limits: Limits,
}

impl TokenEndpoint {
    /// `url` (https; http only to loopback unless `allow_http`), trusting `roots` too.
    pub(crate) fn new(url: &str, allow_http: bool, roots: &[Vec<u8>]) -> Result<Self, TokenError> {
        let config = |e: FetchError| TokenError::Refused(e.to_string());
        let url = fetch::http_url(url, allow_http).map_err(config)?;
        let limits = Limits {
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(5),
            max_bytes: 64 * 1024,
        };
        // No redirects: a 307 would POST the client secret or the subject token again,
        // to wherever it points (another host, plain http).
        let client = fetch::client_no_redirects(&limits, roots).map_err(config)?;
        Ok(Self {
            client,
            url,
            limits,
        })
    }

    /// The endpoint's URL for messages (a password redacted).
    pub(crate) fn shown(&self) -> String {
        fetch::shown_str(self.url.as_str())
    }

    /// POSTs `form`: see [`request_token`].
    pub(crate) async fn request(
        &self,
        form: &[(&str, &str)],
        authorization: Option<&str>,
        allow_na: bool,
    ) -> Result<Token, TokenError> {
        request_token(
            &self.client,
            &self.url,
            &self.limits,
            form,
            authorization,
            allow_na,
        )
        .await
    }
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

/// POSTs `form` to the token endpoint and maps the answer: a token until
/// `expires_in`; an OAuth 2.0 error (400/401) refused by its `error` code only; 5xx,
/// garbage or no answer `UNAVAILABLE`. A token type other than bearer is refused
/// (`N_A` too, unless `allow_na`: RFC 8693's "not an access token").
async fn request_token(
    client: &reqwest::Client,
    url: &reqwest::Url,
    limits: &Limits,
    form: &[(&str, &str)],
    authorization: Option<&str>,
    allow_na: bool,
) -> Result<Token, TokenError> {
    let (status, body) = fetch::post_form(client, url, limits, form, authorization)
        .await
        .map_err(|e| TokenError::Unavailable(e.to_string()))?;
    let endpoint = fetch::shown_str(url.as_str());
    match status {
        200 => {
            let Ok(t) = serde_json::from_slice::<TokenResponse>(&body) else {
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
            let code = serde_json::from_slice::<ErrorResponse>(&body)
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

/// RFC 6749 section 2.3.1: id and secret form-urlencoded, then Basic.
pub(crate) fn basic(id: &str, secret: &[u8]) -> String {
    let secret = String::from_utf8_lossy(secret);
    let pair = format!(
        "{}:{}",
        utf8_percent_encode(id, NON_ALPHANUMERIC),
        utf8_percent_encode(&secret, NON_ALPHANUMERIC)
    );
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

impl TokenSource for ClientCredentials {
    async fn fetch(&self) -> Result<Token, TokenError> {
        let secret = String::from_utf8_lossy(self.secret.expose()).into_owned();
        let secret = zeroize::Zeroizing::new(secret);
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
        let authorization = match self.auth {
            ClientAuth::SecretBasic => Some(zeroize::Zeroizing::new(basic(
                &self.client_id,
                self.secret.expose(),
            ))),
            ClientAuth::SecretPost => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", &secret));
                None
            }
        };
        self.endpoint
            .request(&form, authorization.as_ref().map(|a| a.as_str()), false)
            .await
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("url", &self.endpoint.shown())
            .field("client_id", &self.client_id)
            .field("auth", &self.auth)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ClientCredentialsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentialsBuilder")
            .field("url", &fetch::shown_str(&self.url))
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_form_urlencodes_id_and_secret() {
        // RFC 6749 2.3.1: "a:b" and "c d" are encoded before base64.
        let got = basic("a:b", b"c d");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(got.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(decoded, b"a%3Ab:c%20d");
    }
}
