//! Fetching a key set for [`JwksKeys`](super::JwksKeys): the HTTP client (rustls with
//! this crate's crypto provider), OpenID Connect discovery, `Cache-Control`, and
//! reading a JWK set into usable keys.
//!
//! ```no_run
//! use grpc_auth::authn::jwt::JwksKeys;
//! # async fn start() -> Result<(), grpc_auth::authn::jwt::JwksError> {
//! // GET https://accounts.example.com/.well-known/openid-configuration, then its jwks_uri.
//! JwksKeys::discover("https://accounts.example.com").build()?.ready().await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::HeaderMap;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse};
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;

use super::jwks::{JwksError, Settings};
use super::keys::{JwtKey, KeyError};

/// Keys are never refreshed more often than this, whatever the configuration says.
const TTL_FLOOR: Duration = Duration::from_secs(1);
const MAX_REDIRECTS: usize = 5;
/// Skipped keys logged one by one per fetch; the rest are counted.
const MAX_SKIP_LOGS: usize = 5;

/// Where the keys are: a JWK set URL, or an issuer's discovery document.
pub(super) enum Endpoint {
    Jwks(Url),
    Discovery { issuer: String, config: Url },
}

impl Endpoint {
    pub(super) fn jwks(url: &str, allow_http: bool) -> Result<Self, JwksError> {
        Ok(Self::Jwks(http_url(url, allow_http)?))
    }

    pub(super) fn discovery(issuer: String, allow_http: bool) -> Result<Self, JwksError> {
        let config = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        Ok(Self::Discovery {
            config: http_url(&config, allow_http)?,
            issuer,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Jwks(url) => write!(f, "{}", Shown(url)),
            Self::Discovery { issuer, .. } => write!(f, "{issuer} (discovery)"),
        }
    }
}

/// A URL as logs and errors show it: a password in it (`https://user:pw@host/..`,
/// which reqwest sends as Basic auth) is replaced by `redacted`.
struct Shown<'a>(&'a Url);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.password().is_none() {
            return write!(f, "{}", self.0);
        }
        let mut url = self.0.clone();
        let _ = url.set_password(Some("redacted"));
        write!(f, "{url}")
    }
}

pub(super) struct Fetched {
    pub(super) keys: Vec<JwtKey>,
    pub(super) fingerprint: Vec<String>,
    pub(super) ttl: Duration,
}

/// Fetches an endpoint's keys with its own HTTP client.
pub(super) struct Fetcher {
    endpoint: Endpoint,
    client: reqwest::Client,
    settings: Settings,
}

impl Fetcher {
    pub(super) fn new(
        endpoint: Endpoint,
        settings: Settings,
        extra_roots: &[Vec<u8>],
    ) -> Result<Self, JwksError> {
        Ok(Self {
            client: http_client(&settings, extra_roots)?,
            endpoint,
            settings,
        })
    }

    pub(super) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Discovers (if so configured) and fetches the key set.
    pub(super) async fn fetch(&self) -> Result<Fetched, JwksError> {
        let jwks_url = match &self.endpoint {
            Endpoint::Jwks(url) => url.clone(),
            Endpoint::Discovery { issuer, config } => self.discover(issuer, config).await?,
        };
        let (body, max_age) = self.get(&jwks_url).await?;
        let s = &self.settings;
        let ttl = match max_age {
            Some(age) => age.max(s.min_ttl).min(s.max_ttl),
            None => s.refresh_interval,
        }
        .max(TTL_FLOOR);
        let (keys, fingerprint) = parse_jwks(&body, &jwks_url)?;
        Ok(Fetched {
            keys,
            fingerprint,
            ttl,
        })
    }

    async fn discover(&self, issuer: &str, config: &Url) -> Result<Url, JwksError> {
        let (body, _) = self.get(config).await?;
        parse_discovery(&body, issuer, config, self.settings.allow_http)
    }

    /// GETs `url`: a 2xx body within the size limit, and its `Cache-Control: max-age`.
    async fn get(&self, url: &Url) -> Result<(Vec<u8>, Option<Duration>), JwksError> {
        let fail = |what: String| JwksError::Fetch(format!("GET {}: {what}", Shown(url)));
        let mut response = self
            .client
            .get(url.clone())
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| fail(describe(&e.without_url())))?;
        let status = response.status();
        if !status.is_success() {
            return Err(fail(format!("HTTP {status}")));
        }
        let limit = self.settings.max_bytes;
        let too_large = || fail(format!("response larger than {limit} bytes"));
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let max_age = cache_max_age(response.headers());
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fail(describe(&e.without_url())))?
        {
            if body.len().saturating_add(chunk.len()) > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }
}

/// A key or discovery URL: https; http only to a loopback host or when `allow_http`.
fn http_url(url: &str, allow_http: bool) -> Result<Url, JwksError> {
    let parsed = Url::parse(url)
        .map_err(|e| JwksError::Config(format!("invalid URL {:?}: {e}", shown_str(url))))?;
    let shown = Shown(&parsed);
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(JwksError::Config(format!(
            "invalid URL {shown}: not an http(s) URL"
        )));
    }
    if parsed.scheme() == "http" && !allow_http && !is_loopback(&parsed) {
        return Err(JwksError::Config(format!(
            "invalid URL {shown}: plain http is refused (keys could be replaced in transit); \
             use https, or allow_http() to opt in"
        )));
    }
    Ok(parsed)
}

/// A URL text that did not parse, as errors show it: everything up to its last `@` is
/// dropped, so a password in it is never shown.
fn shown_str(url: &str) -> String {
    match url.rsplit_once('@') {
        Some((_, rest)) => format!("[redacted]@{rest}"),
        None => url.to_owned(),
    }
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The `jwks_uri` of an OpenID Connect discovery document fetched from `config`, whose
/// `issuer` must be `issuer`. An https issuer may not point to an http `jwks_uri`.
pub(crate) fn parse_discovery(
    body: &[u8],
    issuer: &str,
    config: &Url,
    allow_http: bool,
) -> Result<Url, JwksError> {
    #[derive(Deserialize)]
    struct Discovery {
        issuer: Option<String>,
        jwks_uri: Option<String>,
    }
    let doc: Discovery = serde_json::from_slice(body).map_err(|e| {
        JwksError::Invalid(format!(
            "{}: not an OpenID Connect discovery document: {e}",
            Shown(config)
        ))
    })?;
    if doc.issuer.as_deref() != Some(issuer) {
        return Err(JwksError::IssuerMismatch {
            expected: issuer.to_owned(),
            found: doc.issuer.unwrap_or_default(),
        });
    }
    let Some(uri) = doc.jwks_uri else {
        return Err(JwksError::Invalid(format!(
            "{}: no jwks_uri",
            Shown(config)
        )));
    };
    let url = http_url(&uri, allow_http)
        .map_err(|e| JwksError::Invalid(format!("{}: jwks_uri: {e}", Shown(config))))?;
    if config.scheme() == "https" && url.scheme() != "https" {
        return Err(JwksError::Invalid(format!(
            "{}: jwks_uri {} is not https",
            Shown(config),
            Shown(&url)
        )));
    }
    Ok(url)
}

/// The HTTP client: rustls with this crate's crypto provider (aws-lc-rs, or ring
/// under `rust-crypto`), the system's root certificates plus `extra_roots`.
fn http_client(settings: &Settings, extra_roots: &[Vec<u8>]) -> Result<reqwest::Client, JwksError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let config_err = |what: String| JwksError::Config(what);
    let mut roots = rustls::RootCertStore::empty();
    roots.roots.extend(native_roots().roots.iter().cloned());
    for pem in extra_roots {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| config_err(format!("root certificate PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| config_err(format!("root certificate: {e}")))?;
        }
    }
    #[cfg(feature = "aws-lc-rs")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    let provider = rustls::crypto::ring::default_provider();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| config_err(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let redirects = reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if attempt.url().scheme() != "https"
            && attempt.previous().iter().any(|u| u.scheme() == "https")
        {
            attempt.error("redirect from https to http")
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.timeout)
        .redirect(redirects)
        .user_agent(concat!("grpc-auth/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| config_err(format!("HTTP client: {}", describe(&e))))
}

/// The system's root certificates, loaded once per process.
fn native_roots() -> &'static rustls::RootCertStore {
    static ROOTS: OnceLock<rustls::RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!(error = %e, "grpc-auth: reading system root certificates");
        }
        let mut roots = rustls::RootCertStore::empty();
        let (_, ignored) = roots.add_parsable_certificates(found.certs);
        if roots.is_empty() {
            tracing::warn!(
                ignored,
                "grpc-auth: no system root certificates; https key URLs need root_certificates_pem"
            );
        }
        roots
    })
}

/// An error and its sources, one line.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s = s.to_string();
        if !out.ends_with(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        source = source.and_then(|e| e.source());
    }
    out
}

/// The smallest `max-age` of the `Cache-Control` headers; `no-cache` and `no-store`
/// count as 0.
pub(crate) fn cache_max_age(headers: &HeaderMap) -> Option<Duration> {
    let mut max_age: Option<Duration> = None;
    for value in headers.get_all(http::header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let (name, arg) = match directive.split_once('=') {
                Some((name, arg)) => (name.trim(), Some(arg.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            let age =
                if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                    Some(Duration::ZERO)
                } else if name.eq_ignore_ascii_case("max-age") {
                    arg.and_then(|a| a.parse::<u64>().ok())
                        .map(Duration::from_secs)
                } else {
                    None
                };
            if let Some(age) = age {
                max_age = Some(max_age.map_or(age, |m| m.min(age)));
            }
        }
    }
    max_age
}

/// Why a JWK was skipped.
enum Skip {
    /// Meant for something else (`use` or `key_ops`): logged at debug.
    NotForSignatures,
    /// Broken or unsupported: logged at warn.
    Unusable(String),
}

/// The usable keys of a JWK set and their fingerprint.
pub(crate) fn parse_jwks(
    body: &[u8],
    source: &Url,
) -> Result<(Vec<JwtKey>, Vec<String>), JwksError> {
    #[derive(Deserialize)]
    struct JwkSet {
        keys: Vec<Value>,
    }
    let set: JwkSet = serde_json::from_slice(body)
        .map_err(|e| JwksError::Invalid(format!("{}: not a JWK set: {e}", Shown(source))))?;
    let mut keys = Vec::new();
    let mut fingerprint = Vec::new();
    let mut skipped = 0usize;
    for value in set.keys {
        let kid: String = value
            .get("kid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .chars()
            .take(64)
            .collect();
        match usable_key(value) {
            Ok((key, print)) => {
                keys.push(key);
                fingerprint.push(print);
            }
            Err(Skip::NotForSignatures) => {
                tracing::debug!(source = %Shown(source), kid, "grpc-auth: JWKS key not for signatures, skipped");
            }
            Err(Skip::Unusable(reason)) => {
                skipped += 1;
                if skipped <= MAX_SKIP_LOGS {
                    let reason: String = reason.chars().take(200).collect();
                    tracing::warn!(source = %Shown(source), kid, reason, "grpc-auth: JWKS key skipped");
                }
            }
        }
    }
    if skipped > MAX_SKIP_LOGS {
        tracing::warn!(source = %Shown(source), skipped, "grpc-auth: JWKS keys skipped in all");
    }
    if keys.is_empty() {
        return Err(JwksError::Invalid(format!(
            "{}: no usable keys",
            Shown(source)
        )));
    }
    fingerprint.sort_unstable();
    Ok((keys, fingerprint))
}

fn usable_key(value: Value) -> Result<(JwtKey, String), Skip> {
    let jwk: Jwk = serde_json::from_value(value)
        .map_err(|e| Skip::Unusable(format!("not a supported JWK: {e}")))?;
    let common = &jwk.common;
    if common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
        || common
            .key_operations
            .as_ref()
            .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return Err(Skip::NotForSignatures);
    }
    match &jwk.algorithm {
        AlgorithmParameters::OctetKey(_) => {
            return Err(Skip::Unusable(
                "symmetric (oct) keys are not taken from a remote set".into(),
            ));
        }
        AlgorithmParameters::Other(_) => {
            return Err(Skip::Unusable("unsupported key type".into()));
        }
        _ => {}
    }
    let key = match JwtKey::from_jwk(&jwk) {
        Ok(key) => key,
        Err(KeyError::NoAlgorithm)
            if common.key_algorithm.is_none()
                && matches!(jwk.algorithm, AlgorithmParameters::RSA(_)) =>
        {
            let mut rs256 = jwk.clone();
            rs256.common.key_algorithm = Some(KeyAlgorithm::RS256);
            JwtKey::from_jwk(&rs256).map_err(|e| Skip::Unusable(e.to_string()))?
        }
        Err(e) => return Err(Skip::Unusable(e.to_string())),
    };
    let print = serde_json::to_string(&jwk).map_err(|e| Skip::Unusable(e.to_string()))?;
    Ok((key, print))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::jwt::JwksKeys;
    use jsonwebtoken::{Algorithm, EncodingKey};
    use serde_json::json;

    const RSA_PRIVATE: &[u8] = include_bytes!("../../../tests/keys/rsa_private.pem");
    const EC256_PRIVATE: &[u8] = include_bytes!("../../../tests/keys/ec256_private.pem");

    fn jwk(alg: Algorithm, kid: &str) -> Value {
        super::super::install_crypto_provider();
        let key = match alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(EC256_PRIVATE).unwrap(),
            _ => EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
        };
        let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&key, alg).unwrap()).unwrap();
        jwk["kid"] = json!(kid);
        jwk
    }

    fn url() -> Url {
        Url::parse("http://127.0.0.1/jwks.json").unwrap()
    }

    fn cache_control(values: &[&str]) -> Option<Duration> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(http::header::CACHE_CONTROL, v.parse().unwrap());
        }
        cache_max_age(&headers)
    }

    #[test]
    fn cache_control_max_age_is_read() {
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(cache_control(&[]), None);
        assert_eq!(cache_control(&["public, max-age=300"]), secs(300));
        assert_eq!(
            cache_control(&["Max-Age = \"120\" , must-revalidate"]),
            secs(120)
        );
        assert_eq!(cache_control(&["max-age=300", "max-age=60"]), secs(60));
        assert_eq!(cache_control(&["no-cache"]), secs(0));
        assert_eq!(cache_control(&["max-age=600, no-store"]), secs(0));
        assert_eq!(cache_control(&["max-age=soon"]), None);
        assert_eq!(cache_control(&["max-age=-5", "private"]), None);
        assert_eq!(
            cache_control(&["max-age=99999999999999999999999"]),
            None,
            "overflow is ignored"
        );
    }

    #[test]
    fn usable_keys_load_and_the_others_are_skipped() {
        let mut rsa_without_alg = jwk(Algorithm::RS256, "rsa-no-alg");
        rsa_without_alg.as_object_mut().unwrap().remove("alg");
        let mut oaep = jwk(Algorithm::RS256, "oaep");
        oaep["alg"] = json!("RSA-OAEP");
        let mut enc = jwk(Algorithm::RS256, "enc");
        enc["use"] = json!("enc");
        let mut sign_only = jwk(Algorithm::RS256, "sign-only");
        sign_only["key_ops"] = json!(["sign"]);
        let mut ec_wrong_curve = jwk(Algorithm::ES256, "ec-384?");
        ec_wrong_curve["alg"] = json!("ES384");
        let body = json!({ "keys": [
            jwk(Algorithm::RS256, "rsa"),
            { "kty": "oct", "kid": "hmac", "alg": "HS256", "k": "c2VjcmV0" },
            { "kty": "RSA", "kid": "bad-n", "alg": "RS256", "n": "***", "e": "AQAB" },
            { "kty": "XYZ", "kid": "alien" },
            "not an object",
            rsa_without_alg,
            oaep,
            enc,
            sign_only,
            ec_wrong_curve,
            jwk(Algorithm::ES256, "ec"),
        ]});
        let (keys, print) = parse_jwks(body.to_string().as_bytes(), &url()).unwrap();
        let kids: Vec<_> = keys
            .iter()
            .map(|k| (k.kid().unwrap(), k.algorithms()))
            .collect();
        assert_eq!(
            kids,
            vec![
                ("rsa", &[Algorithm::RS256][..]),
                ("rsa-no-alg", &[Algorithm::RS256][..]),
                ("ec", &[Algorithm::ES256][..]),
            ]
        );
        assert_eq!(print.len(), 3);
    }

    #[test]
    fn a_set_without_usable_keys_or_json_is_invalid() {
        let cases: [(&[u8], &str); 5] = [
            (
                b"{\"keys\": []}",
                "http://127.0.0.1/jwks.json: no usable keys",
            ),
            (
                b"{\"keys\": [{\"kty\": \"oct\", \"k\": \"c2VjcmV0\", \"alg\": \"HS256\"}]}",
                "http://127.0.0.1/jwks.json: no usable keys",
            ),
            (
                b"<html>",
                "http://127.0.0.1/jwks.json: not a JWK set: expected value at line 1 column 1",
            ),
            (
                b"{\"keys\": {}}",
                "http://127.0.0.1/jwks.json: not a JWK set: invalid type: map, expected a sequence at line 1 column 9",
            ),
            (
                b"",
                "http://127.0.0.1/jwks.json: not a JWK set: EOF while parsing a value at line 1 column 0",
            ),
        ];
        for (body, want) in cases {
            let err = parse_jwks(body, &url()).unwrap_err();
            assert!(matches!(err, JwksError::Invalid(_)), "{err:?}");
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn fingerprint_ignores_order_and_sees_changes() {
        let a = jwk(Algorithm::RS256, "a");
        let b = jwk(Algorithm::ES256, "b");
        let print = |keys: Vec<Value>| {
            parse_jwks(json!({ "keys": keys }).to_string().as_bytes(), &url())
                .unwrap()
                .1
        };
        assert_eq!(
            print(vec![a.clone(), b.clone()]),
            print(vec![b.clone(), a.clone()])
        );
        assert_ne!(print(vec![a.clone(), b.clone()]), print(vec![a.clone()]));
        let mut renamed = a.clone();
        renamed["kid"] = json!("a2");
        assert_ne!(print(vec![a]), print(vec![renamed]));
    }

    #[test]
    fn a_password_in_the_url_is_not_shown() {
        let source = Url::parse("https://client:s3cret-pw@idp.example/jwks.json").unwrap();
        let err = parse_jwks(b"{\"keys\": []}", &source).unwrap_err();
        assert_eq!(
            err.to_string(),
            "https://client:redacted@idp.example/jwks.json: no usable keys"
        );
        let keys = JwksKeys::builder("https://client:s3cret-pw@idp.example/jwks.json")
            .build()
            .unwrap();
        let shown = format!("{keys:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(Shown(&url()).to_string(), "http://127.0.0.1/jwks.json");
    }

    #[test]
    fn plain_http_is_refused_unless_loopback_or_allowed() {
        for bad in [
            "http://idp.example/jwks.json",
            "http://10.0.0.1/jwks.json",
            "http://user:pw@idp.example/jwks.json",
        ] {
            let err = JwksKeys::builder(bad).build().unwrap_err();
            let text = err.to_string();
            assert!(text.contains("plain http is refused"), "{bad}: {text}");
            assert!(!text.contains("pw@"), "{text}");
        }
        let err = JwksKeys::discover("http://idp.example")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("plain http is refused"), "{err}");
        for ok in [
            "http://127.0.0.1:8080/jwks.json",
            "http://localhost/jwks.json",
            "http://[::1]:9/jwks.json",
        ] {
            JwksKeys::builder(ok).build().unwrap();
        }
        JwksKeys::builder("http://idp.example/jwks.json")
            .allow_http()
            .build()
            .unwrap();
        let url = Url::parse("https://idp.example/.well-known/openid-configuration").unwrap();
        let doc = br#"{"issuer":"https://idp.example","jwks_uri":"http://keys.example/jwks"}"#;
        let err = parse_discovery(doc, "https://idp.example", &url, false).unwrap_err();
        assert!(err.to_string().contains("plain http is refused"), "{err}");
    }

    #[test]
    fn urls_must_be_http_or_https() {
        for bad in [
            "ftp://example.com/jwks",
            "not a url",
            "file:///etc/jwks.json",
            "http://",
        ] {
            let err = JwksKeys::builder(bad).build().unwrap_err();
            assert!(matches!(err, JwksError::Config(_)), "{bad}: {err:?}");
        }
        let err = JwksKeys::discover("mailto:ops@example.com")
            .build()
            .unwrap_err();
        assert!(matches!(err, JwksError::Config(_)), "{err:?}");
        let err = JwksKeys::builder("http://127.0.0.1/jwks")
            .root_certificates_pem(
                b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".to_vec(),
            )
            .build()
            .unwrap_err();
        assert!(matches!(err, JwksError::Config(_)), "{err:?}");
    }
}
