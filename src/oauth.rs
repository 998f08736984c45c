//! OAuth 2.0 at an identity provider's endpoints, shared by the client's token sources
//! ([`ClientCredentials`](crate::credentials::ClientCredentials),
//! [`TokenExchangeSource`](crate::credentials::TokenExchangeSource)) and the server's
//! token introspection ([`IntrospectionAuthenticator`](crate::authn::IntrospectionAuthenticator)):
//! how the client proves itself ([`ClientAuth`]), and where an endpoint is, configured
//! or discovered from the issuer's metadata. The HTTP client, timeouts and size limits
//! are the crate's one fetcher's (the JWKS fetcher's too).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Url;
use zeroize::Zeroizing;

use crate::Secret;
use crate::authn::jwt::KeyError;
use crate::fetch::{self, FetchError, Limits, Shown};

/// RFC 7523 section 2.2: the `client_assertion_type` of a JWT client assertion.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long a client assertion is valid: it is made for one request.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(60);

/// How an OAuth 2.0 client authenticates to the provider's token and introspection
/// endpoints: its `client_id` and one method.
///
/// - [`secret_basic`](Self::secret_basic): HTTP Basic with the form-urlencoded id and
///   secret (`client_secret_basic`, RFC 6749 section 2.3.1).
/// - [`secret_post`](Self::secret_post): `client_id` and `client_secret` in the form.
/// - [`private_key_jwt`](Self::private_key_jwt): a JWT signed with the client's private
///   key (RFC 7523, OpenID Connect `private_key_jwt`): no shared secret travels. Each
///   request gets a fresh assertion (`iss` = `sub` = the client id, `aud` the endpoint's
///   URL, a random `jti`, valid 60 s).
///
/// `Debug` shows the client id and the method, never the secret or the key.
///
/// ```
/// use grpc_auth::oauth::ClientAuth;
/// let auth = ClientAuth::secret_basic("billing", "s3cret");
/// assert_eq!(format!("{auth:?}"), r#"ClientAuth { client_id: "billing", method: "client_secret_basic" }"#);
/// ```
#[derive(Clone)]
pub struct ClientAuth {
    client_id: String,
    method: Method,
}

#[derive(Clone)]
enum Method {
    SecretBasic(Secret),
    SecretPost(Secret),
    PrivateKeyJwt(Box<Signer>),
}

/// A `private_key_jwt` client's key and assertion settings.
#[derive(Clone)]
struct Signer {
    key: Arc<EncodingKey>,
    header: Header,
    audience: Option<String>,
}

/// What a request carries to authenticate the client: an `authorization` value and
/// form fields, both wiped from memory when dropped.
pub(crate) struct Presented {
    pub(crate) authorization: Option<Zeroizing<String>>,
    pub(crate) form: Vec<(&'static str, Zeroizing<String>)>,
}

impl ClientAuth {
    /// `client_secret_basic`: the id and secret in an `authorization: Basic` header.
    pub fn secret_basic(client_id: impl Into<String>, secret: impl Into<Secret>) -> Self {
        Self {
            client_id: client_id.into(),
            method: Method::SecretBasic(secret.into()),
        }
    }

    /// `client_secret_post`: `client_id` and `client_secret` in the form.
    pub fn secret_post(client_id: impl Into<String>, secret: impl Into<Secret>) -> Self {
        Self {
            client_id: client_id.into(),
            method: Method::SecretPost(secret.into()),
        }
    }

    /// `private_key_jwt` (RFC 7523): an assertion signed with the PEM private key `pem`
    /// for `alg` (RS*/PS*: RSA, ES*: EC, EdDSA: Ed25519; HMAC algorithms are refused).
    pub fn private_key_jwt(
        client_id: impl Into<String>,
        alg: Algorithm,
        pem: &[u8],
    ) -> Result<Self, KeyError> {
        Ok(Self {
            client_id: client_id.into(),
            method: Method::PrivateKeyJwt(Box::new(Signer {
                key: Arc::new(crate::credentials::signing_key(alg, pem)?),
                header: Header::new(alg),
                audience: None,
            })),
        })
    }

    /// The `kid` header of `private_key_jwt` assertions (which of the client's registered
    /// keys signed). Without effect on the secret methods.
    pub fn key_id(mut self, kid: impl Into<String>) -> Self {
        if let Method::PrivateKeyJwt(signer) = &mut self.method {
            signer.header.kid = Some(kid.into());
        }
        self
    }

    /// The `aud` of `private_key_jwt` assertions, when the provider wants another value
    /// than the endpoint's URL (some want their issuer identifier). Without effect on
    /// the secret methods.
    pub fn assertion_audience(mut self, audience: impl Into<String>) -> Self {
        if let Method::PrivateKeyJwt(signer) = &mut self.method {
            signer.audience = Some(audience.into());
        }
        self
    }

    /// The client's id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    fn method_name(&self) -> &'static str {
        match self.method {
            Method::SecretBasic(_) => "client_secret_basic",
            Method::SecretPost(_) => "client_secret_post",
            Method::PrivateKeyJwt(_) => "private_key_jwt",
        }
    }

    /// What a request to `endpoint` carries to authenticate the client.
    pub(crate) fn present(&self, endpoint: &Url) -> Result<Presented, String> {
        let id = || Zeroizing::new(self.client_id.clone());
        Ok(match &self.method {
            Method::SecretBasic(secret) => Presented {
                authorization: Some(Zeroizing::new(basic(&self.client_id, secret.expose()))),
                form: Vec::new(),
            },
            Method::SecretPost(secret) => Presented {
                authorization: None,
                form: vec![
                    ("client_id", id()),
                    (
                        "client_secret",
                        Zeroizing::new(String::from_utf8_lossy(secret.expose()).into_owned()),
                    ),
                ],
            },
            Method::PrivateKeyJwt(signer) => {
                let aud = signer.audience.as_deref().unwrap_or(endpoint.as_str());
                let assertion = self.assertion(&signer.key, &signer.header, aud)?;
                Presented {
                    authorization: None,
                    form: vec![
                        ("client_id", id()),
                        (
                            "client_assertion_type",
                            Zeroizing::new(JWT_BEARER.to_owned()),
                        ),
                        ("client_assertion", Zeroizing::new(assertion)),
                    ],
                }
            }
        })
    }

    fn assertion(&self, key: &EncodingKey, header: &Header, aud: &str) -> Result<String, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).map_err(|_| "no randomness for a client assertion".to_owned())?;
        let claims = serde_json::json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": aud,
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "iat": now,
            "exp": now.saturating_add(ASSERTION_LIFETIME.as_secs()),
        });
        jsonwebtoken::encode(header, &claims, key)
            .map_err(|_| "could not sign the client assertion".to_owned())
    }
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuth")
            .field("client_id", &self.client_id)
            .field("method", &self.method_name())
            .finish()
    }
}

/// RFC 6749 section 2.3.1: id and secret form-urlencoded, then Basic.
pub(crate) fn basic(id: &str, secret: &[u8]) -> String {
    let secret = String::from_utf8_lossy(secret);
    let pair = Zeroizing::new(format!(
        "{}:{}",
        utf8_percent_encode(id, NON_ALPHANUMERIC),
        utf8_percent_encode(&secret, NON_ALPHANUMERIC)
    ));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
    )
}

/// A provider endpoint: its URL, configured or read from the issuer's discovery
/// document on first use (a failed discovery is retried on the next call), and the
/// crate's HTTP client with this endpoint's limits. It follows no redirect: a 307
/// would POST the client's credentials again, to wherever it points.
pub(crate) struct Endpoint {
    client: reqwest::Client,
    limits: Limits,
    allow_http: bool,
    target: Target,
}

enum Target {
    Fixed(Url),
    Discovered {
        issuer: String,
        config: Url,
        field: &'static str,
        url: tokio::sync::OnceCell<Url>,
    },
}

impl Endpoint {
    /// The endpoint at `url` (https; http only to loopback unless `allow_http`).
    pub(crate) fn fixed(
        url: &str,
        allow_http: bool,
        roots: &[Vec<u8>],
        limits: Limits,
    ) -> Result<Self, FetchError> {
        let url = fetch::http_url(url, allow_http)?;
        Self::with(Target::Fixed(url), allow_http, roots, limits)
    }

    /// The endpoint named by `field` of `issuer`'s discovery document.
    pub(crate) fn discovered(
        issuer: &str,
        field: &'static str,
        allow_http: bool,
        roots: &[Vec<u8>],
        limits: Limits,
    ) -> Result<Self, FetchError> {
        let target = Target::Discovered {
            config: fetch::discovery_url(issuer, allow_http)?,
            issuer: issuer.to_owned(),
            field,
            url: tokio::sync::OnceCell::new(),
        };
        Self::with(target, allow_http, roots, limits)
    }

    fn with(
        target: Target,
        allow_http: bool,
        roots: &[Vec<u8>],
        limits: Limits,
    ) -> Result<Self, FetchError> {
        Ok(Self {
            client: fetch::client_no_redirects(&limits, roots)?,
            limits,
            allow_http,
            target,
        })
    }

    /// The endpoint's URL, discovering it first if need be.
    pub(crate) async fn url(&self) -> Result<&Url, FetchError> {
        match &self.target {
            Target::Fixed(url) => Ok(url),
            Target::Discovered {
                issuer,
                config,
                field,
                url,
            } => {
                url.get_or_try_init(|| async {
                    let (body, _) = fetch::get(&self.client, config, &self.limits).await?;
                    fetch::discovered_url(&body, issuer, config, field, self.allow_http).map_err(
                        |e| match e {
                            fetch::DiscoveryError::IssuerMismatch { expected, found } => {
                                FetchError::Request(format!(
                                    "{}: issuer {found:?}, expected {expected:?}",
                                    Shown(config)
                                ))
                            }
                            fetch::DiscoveryError::Invalid(what) => FetchError::Request(what),
                        },
                    )
                })
                .await
            }
        }
    }

    /// POSTs `form` authenticated as `auth` (if any): the URL it went to, the status
    /// and the body (bounded), whatever the status. Errors name the URL, never the
    /// form.
    pub(crate) async fn post(
        &self,
        form: &[(&str, &str)],
        auth: Option<&ClientAuth>,
    ) -> Result<(u16, Vec<u8>), FetchError> {
        let url = self.url().await?;
        let presented = match auth {
            Some(auth) => Some(auth.present(url).map_err(FetchError::Request)?),
            None => None,
        };
        let mut all: Vec<(&str, &str)> = form.to_vec();
        if let Some(p) = &presented {
            all.extend(p.form.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let authorization = presented
            .as_ref()
            .and_then(|p| p.authorization.as_ref())
            .map(|a| a.as_str());
        fetch::post_form(&self.client, url, &self.limits, &all, authorization).await
    }

    /// The endpoint for messages: its URL (a password redacted), or the issuer's
    /// discovery.
    pub(crate) fn shown(&self) -> String {
        match &self.target {
            Target::Fixed(url) => Shown(url).to_string(),
            Target::Discovered {
                issuer, field, url, ..
            } => match url.get() {
                Some(url) => Shown(url).to_string(),
                None => format!("{} ({field} of {issuer})", fetch::shown_str(issuer)),
            },
        }
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

    #[test]
    fn debug_shows_neither_secret_nor_key() {
        let auth = ClientAuth::secret_post("billing", "hunter2");
        let shown = format!("{auth:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("client_secret_post"), "{shown}");
    }

    #[test]
    fn a_private_key_jwt_assertion_names_the_client_and_the_endpoint() {
        let pem = include_bytes!("../tests/keys/rsa_private.pem");
        let auth = ClientAuth::private_key_jwt("billing", Algorithm::RS256, pem)
            .unwrap()
            .key_id("k1");
        let url = Url::parse("https://idp.example/token").unwrap();
        let p = auth.present(&url).unwrap();
        assert!(p.authorization.is_none());
        let field = |name: &str| {
            p.form
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
                .unwrap()
        };
        assert_eq!(field("client_assertion_type"), JWT_BEARER);
        assert_eq!(field("client_id"), "billing");
        let assertion = field("client_assertion");
        let parts: Vec<&str> = assertion.split('.').collect();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], "k1");
        assert_eq!(claims["iss"], "billing");
        assert_eq!(claims["sub"], "billing");
        assert_eq!(claims["aud"], "https://idp.example/token");
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            60
        );
        // A fresh jti each time: an assertion is for one request.
        let again = auth.present(&url).unwrap();
        assert_ne!(
            again
                .form
                .iter()
                .find(|(k, _)| *k == "client_assertion")
                .unwrap()
                .1
                .as_str(),
            assertion
        );
    }

    #[test]
    fn an_hmac_key_is_refused_for_private_key_jwt() {
        assert!(ClientAuth::private_key_jwt("billing", Algorithm::HS256, b"secret").is_err());
    }
}
