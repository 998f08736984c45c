//! An in-process JWKS and OpenID Connect discovery server on 127.0.0.1:0 (hyper 1),
//! whose behaviour tests set and count, and the test keys it serves.
//!
//! Paths: `/jwks.json` (the key set) and `/.well-known/openid-configuration` (naming
//! the server's base URL as issuer and `/jwks.json` as `jwks_uri`).
#![allow(dead_code)]

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How the server answers (both paths).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Mode {
    /// The configured documents.
    Serve,
    /// This HTTP status, with a small body.
    Status(u16),
    /// Never answers.
    Hang,
    /// `200` with a body that is not JSON.
    Garbage,
    /// `200` with a valid JSON body of this many bytes, with a `content-length`.
    Oversized(usize),
    /// The same, in chunks and without a `content-length`.
    OversizedChunked(usize),
}

struct Inner {
    base: String,
    mode: Mutex<Mode>,
    jwks: Mutex<Value>,
    cache_control: Mutex<Option<String>>,
    /// The `issuer` the discovery document names; `None`: the base URL.
    discovered_issuer: Mutex<Option<String>>,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
    /// While true, answers wait (requests are still counted).
    held: watch::Sender<bool>,
}

/// The running server; its task ends with the test's runtime.
#[derive(Clone)]
pub(crate) struct JwksServer(Arc<Inner>);

impl JwksServer {
    /// A plain-http server serving `jwks`.
    pub(crate) async fn start(jwks: Value) -> Self {
        Self::start_with(jwks, None).await
    }

    /// An https server serving `jwks` with this certificate chain and key (PEM).
    pub(crate) async fn start_tls(jwks: Value, cert_pem: &str, key_pem: &str) -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("certificate PEM");
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key PEM");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server certificate");
        Self::start_with(
            jwks,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
        .await
    }

    async fn start_with(jwks: Value, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let server = Self(Arc::new(Inner {
            base: format!("{scheme}://127.0.0.1:{}", addr.port()),
            mode: Mutex::new(Mode::Serve),
            jwks: Mutex::new(jwks),
            cache_control: Mutex::new(None),
            discovered_issuer: Mutex::new(None),
            jwks_fetches: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
            held: watch::channel(false).0,
        }));
        let inner = server.0.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let inner = inner.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let inner = inner.clone();
                        async move { Ok::<_, Infallible>(inner.answer(req).await) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = match tls {
                        Some(tls) => match tls.accept(stream).await {
                            Ok(stream) => {
                                http.serve_connection(TokioIo::new(stream), service).await
                            }
                            Err(_) => return,
                        },
                        None => http.serve_connection(TokioIo::new(stream), service).await,
                    };
                });
            }
        });
        server
    }

    /// `http://127.0.0.1:port` (or https): the issuer discovery finds.
    pub(crate) fn issuer(&self) -> String {
        self.0.base.clone()
    }

    /// The key set's URL.
    pub(crate) fn jwks_url(&self) -> String {
        format!("{}/jwks.json", self.0.base)
    }

    /// Serves `jwks` from now on.
    pub(crate) fn set_jwks(&self, jwks: Value) {
        *self.0.jwks.lock().unwrap() = jwks;
    }

    pub(crate) fn set_mode(&self, mode: Mode) {
        *self.0.mode.lock().unwrap() = mode;
    }

    /// Sends this `Cache-Control` with the key set (`None`: none).
    pub(crate) fn set_cache_control(&self, value: Option<&str>) {
        *self.0.cache_control.lock().unwrap() = value.map(str::to_owned);
    }

    /// Makes the discovery document name `issuer` instead of the server's URL.
    pub(crate) fn set_discovered_issuer(&self, issuer: &str) {
        *self.0.discovered_issuer.lock().unwrap() = Some(issuer.to_owned());
    }

    /// Makes answers wait until [`release`](Self::release).
    pub(crate) fn hold(&self) {
        self.0.held.send_replace(true);
    }

    pub(crate) fn release(&self) {
        self.0.held.send_replace(false);
    }

    /// Requests for the key set so far.
    pub(crate) fn jwks_fetches(&self) -> usize {
        self.0.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Requests for the discovery document so far.
    pub(crate) fn discovery_fetches(&self) -> usize {
        self.0.discovery_fetches.load(Ordering::SeqCst)
    }
}

type Answer = Response<BoxBody<Bytes, Infallible>>;

impl Inner {
    async fn answer(&self, req: Request<Incoming>) -> Answer {
        let is_jwks = match req.uri().path() {
            "/jwks.json" => true,
            "/.well-known/openid-configuration" => false,
            _ => return respond(StatusCode::NOT_FOUND, full("not found"), None),
        };
        let counter = if is_jwks {
            &self.jwks_fetches
        } else {
            &self.discovery_fetches
        };
        counter.fetch_add(1, Ordering::SeqCst);
        let _ = self.held.subscribe().wait_for(|held| !held).await;
        let mode = self.mode.lock().unwrap().clone();
        match mode {
            Mode::Serve => {}
            Mode::Status(code) => {
                let status = StatusCode::from_u16(code).expect("status");
                return respond(status, full("provider error"), None);
            }
            Mode::Hang => std::future::pending().await,
            Mode::Garbage => return respond(StatusCode::OK, full("this is not json {"), None),
            Mode::Oversized(n) => return respond(StatusCode::OK, full(padded(n)), None),
            Mode::OversizedChunked(n) => {
                let chunks = padded(n)
                    .into_bytes()
                    .chunks(4096)
                    .map(Bytes::copy_from_slice)
                    .collect();
                return respond(StatusCode::OK, Chunked(chunks).boxed(), None);
            }
        }
        if is_jwks {
            let body = self.jwks.lock().unwrap().to_string();
            let cache_control = self.cache_control.lock().unwrap().clone();
            respond(StatusCode::OK, full(body), cache_control)
        } else {
            let issuer = self
                .discovered_issuer
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_else(|| self.base.clone());
            let doc = json!({
                "issuer": issuer,
                "jwks_uri": format!("{}/jwks.json", self.base),
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            });
            respond(StatusCode::OK, full(doc.to_string()), None)
        }
    }
}

fn full(body: impl Into<Bytes>) -> BoxBody<Bytes, Infallible> {
    http_body_util::Full::new(body.into()).boxed()
}

/// A JSON key set of exactly `n` bytes: `{"keys": [` , spaces, `]}`.
fn padded(n: usize) -> String {
    let head = r#"{"keys": ["#;
    let tail = "]}";
    format!(
        "{head}{}{tail}",
        " ".repeat(n.saturating_sub(head.len() + tail.len()))
    )
}

fn respond(
    status: StatusCode,
    body: BoxBody<Bytes, Infallible>,
    cache_control: Option<String>,
) -> Answer {
    let mut res = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(cc) = cache_control {
        res = res.header("cache-control", cc);
    }
    res.body(body).expect("response")
}

/// A body sent in chunks with no known length.
struct Chunked(std::collections::VecDeque<Bytes>);

impl Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

// ---------------------------------------------------------------------------
// Test keys (the PEMs in tests/keys) and their JWKs
// ---------------------------------------------------------------------------

/// A private key, its algorithm and kid, and its public JWK.
pub(crate) struct TestKey {
    pub(crate) kid: String,
    pub(crate) alg: Algorithm,
    signing: EncodingKey,
    pub(crate) jwk: Value,
}

impl TestKey {
    fn new(alg: Algorithm, pem: &[u8], kid: &str) -> Self {
        install_jwt_provider();
        let signing = match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
            _ => EncodingKey::from_rsa_pem(pem),
        }
        .expect("private key");
        let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&signing, alg).expect("jwk"))
            .expect("jwk json");
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        Self {
            kid: kid.to_owned(),
            alg,
            signing,
            jwk,
        }
    }

    /// A token over `claims` whose header names this key's kid.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        self.sign_header(Some(&self.kid), claims)
    }

    /// A token over `claims` whose header has no kid.
    pub(crate) fn sign_without_kid(&self, claims: &Value) -> String {
        self.sign_header(None, claims)
    }

    /// A token over `claims` naming `kid`, whatever it is.
    pub(crate) fn sign_as(&self, kid: &str, claims: &Value) -> String {
        self.sign_header(Some(kid), claims)
    }

    fn sign_header(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.signing).expect("sign")
    }
}

pub(crate) fn rsa(kid: &str) -> TestKey {
    TestKey::new(
        Algorithm::RS256,
        include_bytes!("../keys/rsa_private.pem"),
        kid,
    )
}

/// A second RSA key.
pub(crate) fn rsa2(kid: &str) -> TestKey {
    TestKey::new(
        Algorithm::RS256,
        include_bytes!("../keys/rsa2_private.pem"),
        kid,
    )
}

pub(crate) fn ec256(kid: &str) -> TestKey {
    TestKey::new(
        Algorithm::ES256,
        include_bytes!("../keys/ec256_private.pem"),
        kid,
    )
}

pub(crate) fn ed25519(kid: &str) -> TestKey {
    TestKey::new(
        Algorithm::EdDSA,
        include_bytes!("../keys/ed25519_private.pem"),
        kid,
    )
}

/// `{"keys": [...]}` of the keys' JWKs.
pub(crate) fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
}

/// jsonwebtoken needs its crypto provider before it signs; making an authenticator
/// installs the one grpc-auth uses.
pub(crate) fn install_jwt_provider() {
    let _ = grpc_auth::authn::jwt::JwtAuthenticator::new(grpc_auth::authn::jwt::StaticKeys::new());
}
