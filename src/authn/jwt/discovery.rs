//! Where a [`JwksKeys`](super::JwksKeys) finds its keys: a JWK set URL, or an issuer's
//! OpenID Connect discovery document naming one; the fetch goes through the crate's
//! HTTP client (`crate::fetch`), the set is read by `jwk_set`.
//!
//! ```no_run
//! use grpc_auth::authn::jwt::JwksKeys;
//! # async fn start() -> Result<(), grpc_auth::authn::jwt::JwksError> {
//! // GET https://accounts.example.com/.well-known/openid-configuration, then its jwks_uri.
//! JwksKeys::builder_for_issuer("https://accounts.example.com").build()?.ready().await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use reqwest::Url;

use super::jwk_set::parse_jwks;
use super::jwks::{JwksError, Settings};
use super::keys::JwtKey;
use crate::fetch::{self, Shown, http_url};

/// Keys are never refreshed more often than this, whatever the configuration says.
const TTL_FLOOR: Duration = Duration::from_secs(1);

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
        Ok(Self::Discovery {
            config: fetch::discovery_url(&issuer, allow_http)?,
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
            client: fetch::client(&settings.limits(), extra_roots)?,
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
        let (body, max_age) = fetch::get(&self.client, &jwks_url, &self.settings.limits()).await?;
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
        let (body, _) = fetch::get(&self.client, config, &self.settings.limits()).await?;
        parse_discovery(&body, issuer, config, self.settings.allow_http)
    }
}

/// The `jwks_uri` of an OpenID Connect discovery document fetched from `config`, whose
/// `issuer` must be `issuer`. An https issuer may not point to an http `jwks_uri`.
pub(crate) fn parse_discovery(
    body: &[u8],
    issuer: &str,
    config: &Url,
    allow_http: bool,
) -> Result<Url, JwksError> {
    fetch::discovered_url(body, issuer, config, "jwks_uri", allow_http).map_err(|e| match e {
        fetch::DiscoveryError::IssuerMismatch { expected, found } => {
            JwksError::IssuerMismatch { expected, found }
        }
        fetch::DiscoveryError::Invalid(what) => JwksError::Invalid(what),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::jwt::JwksKeys;
    use crate::fetch::cache_max_age;
    use http::HeaderMap;
    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{Algorithm, EncodingKey};
    use serde_json::Value;
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
    fn the_userinfo_in_the_url_is_not_shown() {
        let source = Url::parse("https://client:s3cret-pw@idp.example/jwks.json").unwrap();
        let err = parse_jwks(b"{\"keys\": []}", &source).unwrap_err();
        assert_eq!(
            err.to_string(),
            "https://redacted@idp.example/jwks.json: no usable keys"
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
        let err = JwksKeys::builder_for_issuer("http://idp.example")
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
        let err = JwksKeys::builder_for_issuer("mailto:ops@example.com")
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
