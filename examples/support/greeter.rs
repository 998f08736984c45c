//! The greeter service behind grpc-auth, shared by the examples, the demo, the tests
//! and the benches (included with `#[path]`).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use grpc_auth::authn::hmac::{HmacAuthenticator, HmacVerifier, StaticHmacKeys};
#[cfg(feature = "jwks")]
use grpc_auth::authn::jwt::{IssuerKeys, JwksKeys};
use grpc_auth::authn::jwt::{JwtAuthenticator, JwtKey, KeySource, StaticKeys};
use grpc_auth::authn::revocation::Revocations;
use grpc_auth::authn::token_exchange::{
    OpaqueTokens, SignedTokens, StoreTokens, TokenExchange, TokenKeys,
};
use grpc_auth::authn::{
    ApiKeyAuthenticator, AuthRequest, AuthResult, BasicAuthenticator, BoxAuthenticator,
    NoAuthenticator,
};
use grpc_auth::store::SharedStore;
use grpc_auth::{AuthLayer, Authenticator, Policy, Principal};
use grpc_auth_protos::helloworld::greeter_server::{Greeter, GreeterServer};
use grpc_auth_protos::helloworld::{HelloReply, HelloRequest};
use jsonwebtoken::Algorithm;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

/// Greets with the principal the auth layer put in the request extensions.
#[derive(Debug, Default, Clone)]
pub(crate) struct MyGreeter;

fn greeting(req: &Request<HelloRequest>) -> String {
    let name = &req.get_ref().name;
    match req.extensions().get::<Principal>() {
        Some(p) => format!(
            "Hello {name}, authenticated as {} via {}",
            p.subject(),
            p.scheme()
        ),
        None => format!("Hello {name}, unauthenticated"),
    }
}

#[tonic::async_trait]
impl Greeter for MyGreeter {
    async fn say_hello(&self, req: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        Ok(Response::new(HelloReply {
            message: greeting(&req),
        }))
    }

    async fn say_hello_admin(
        &self,
        req: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        Ok(Response::new(HelloReply {
            message: format!("[admin] {}", greeting(&req)),
        }))
    }
}

/// What the greeter server is configured with (the example's flags).
#[derive(Debug, Default, Clone)]
pub(crate) struct ServerConfig {
    pub(crate) jwt_hs256_secret: Option<String>,
    /// PEM public keys (RSA: RS256/PS256, EC: ES256/ES384, Ed25519: EdDSA).
    pub(crate) jwt_public_keys: Vec<Vec<u8>>,
    /// Checked against `iss`; also the issuer of a `--jwks-url` key set.
    pub(crate) jwt_issuer: Option<String>,
    pub(crate) jwt_audience: Option<String>,
    /// JWKS URLs (remote keys instead of the static ones above).
    pub(crate) jwks_urls: Vec<String>,
    /// Issuers whose keys are found by OpenID Connect discovery; several are routed
    /// by the token's `iss`.
    pub(crate) oidc_issuers: Vec<String>,
    /// `(user, password)`; a password starting with `$argon2` is a PHC hash.
    pub(crate) basic_users: Vec<(String, String)>,
    /// `(key, principal)`.
    pub(crate) api_keys: Vec<(String, String)>,
    /// `(key id, secret)` for HMAC signatures; the secret's bytes are the key as given.
    pub(crate) hmac_keys: Vec<(String, String)>,
    pub(crate) public: Vec<String>,
    /// `(method path, scope)`.
    pub(crate) require_scope: Vec<(String, String)>,
    /// PEM certificate chain and private key: serve TLS instead of plaintext.
    pub(crate) tls: Option<(Vec<u8>, Vec<u8>)>,
    /// Basic logins are answered with `authorization: Bearer <token>` (any method).
    pub(crate) issue_tokens: bool,
    /// The keys tokens are signed with (a handle: rotate it while serving); without
    /// one, a random key made at start-up.
    pub(crate) token_keys: Option<TokenKeys>,
    /// How long an issued token lasts (default 15 minutes).
    pub(crate) token_ttl: Option<Duration>,
    /// Counts Basic verifications (accepted or refused), for tests.
    pub(crate) basic_verifications: Option<Arc<AtomicUsize>>,
    /// Redis URL: replay protection, revocations, failed-login limits and opaque
    /// tokens shared with every replica using the same Redis and prefix.
    pub(crate) redis: Option<String>,
    /// Key prefix in Redis (default `grpc-auth:`).
    pub(crate) redis_prefix: Option<String>,
    /// How long replay and revocation checks are refused after Redis lost its data
    /// (default 10 minutes).
    pub(crate) redis_quarantine: Option<Duration>,
    /// A gRPC authorization policy (gRFC A43) checked on every call (a `SharedPolicy`
    /// a file watcher replaces as its file changes).
    pub(crate) authz_policy: Option<grpc_auth::authz::SharedPolicy>,
    /// PEM CA that verifies client certificates (with `tls`): a verified certificate
    /// authenticates by its identity (SPIFFE ID, DNS SAN or subject); a call without
    /// one falls through to the other schemes.
    pub(crate) client_ca: Option<Vec<u8>>,
    /// Opaque bearer tokens checked at an OAuth 2.0 introspection endpoint (after the
    /// JWT scheme: JWTs are verified locally, other bearer tokens introspected).
    pub(crate) introspection: Option<Introspection>,
    /// Authenticate by client certificates another party verified (Envoy, for the
    /// ext_authz server), without serving TLS here.
    pub(crate) mtls: bool,
    /// A configuration file's schemes and policy (`--config`, see `grpc_auth::config`),
    /// used instead of the scheme and policy fields above (the health service is then
    /// public only if the file says so); `tls`, `client_ca`, the Redis fields (over the
    /// file's `[redis]`) and `authz_policy` (over the file's) still apply.
    #[cfg(feature = "config")]
    pub(crate) auth_config: Option<grpc_auth::config::AuthConfig>,
}

/// Where and as whom the server introspects tokens (RFC 7662).
#[derive(Debug, Clone)]
pub(crate) struct Introspection {
    /// The endpoint's URL, or the issuer whose discovery document names it.
    pub(crate) endpoint: IntrospectionEndpoint,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    /// An active token's answer is reused at most this long (default 30 s).
    pub(crate) cache_ttl: Option<Duration>,
    /// The `aud` an introspected token must carry.
    pub(crate) audience: Option<String>,
}

/// An introspection endpoint, given or discovered.
#[derive(Debug, Clone)]
pub(crate) enum IntrospectionEndpoint {
    Url(String),
    Issuer(String),
}

/// Counts the calls on which `A` found its credential.
#[derive(Debug)]
struct Counted<A>(A, Arc<AtomicUsize>);

impl<A: Authenticator> Authenticator for Counted<A> {
    async fn authenticate(&self, req: &AuthRequest<'_>) -> AuthResult {
        let result = self.0.authenticate(req).await;
        if !matches!(result, Ok(None)) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
        result
    }
}

/// The audience of the tokens the greeter issues: its replicas share it.
pub(crate) const TOKEN_AUDIENCE: &str = "helloworld.Greeter";

/// A random token key (one replica; replicas share a key through `--token-secret`).
pub(crate) fn random_token_keys() -> Result<TokenKeys, String> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| e.to_string())?;
    TokenKeys::hs256("k1", secret.as_slice()).map_err(|e| e.to_string())
}

fn pem_key(pem: &[u8]) -> Result<JwtKey, String> {
    let attempts = [
        (Algorithm::RS256, Some(Algorithm::PS256)),
        (Algorithm::ES256, None),
        (Algorithm::ES384, None),
        (Algorithm::EdDSA, None),
    ];
    for (alg, also) in attempts {
        if let Ok(k) = JwtKey::from_pem(alg, pem) {
            return match also {
                Some(a) => k.also_allow(a).map_err(|e| e.to_string()),
                None => Ok(k),
            };
        }
    }
    Err("unsupported or invalid PEM public key".into())
}

impl ServerConfig {
    /// The shared store when `--redis` is given (needs a Tokio runtime).
    #[cfg(feature = "redis")]
    fn store(&self) -> Result<Option<SharedStore>, String> {
        let Some(url) = &self.redis else {
            return Ok(None);
        };
        let mut builder = grpc_auth::store::RedisStore::builder(url);
        if let Some(prefix) = &self.redis_prefix {
            builder = builder.prefix(prefix);
        }
        if let Some(q) = self.redis_quarantine {
            builder = builder.data_loss_quarantine(q);
        }
        let store = builder.build().map_err(|e| format!("--redis: {e}"))?;
        Ok(Some(Arc::new(store)))
    }

    #[cfg(not(feature = "redis"))]
    fn store(&self) -> Result<Option<SharedStore>, String> {
        match self.redis {
            Some(_) => Err("--redis needs grpc-auth's `redis` feature".into()),
            None => Ok(None),
        }
    }

    /// The configuration file's, with the `--redis` store when one is given.
    #[cfg(feature = "config")]
    fn file_config(&self) -> Result<Option<grpc_auth::config::AuthConfig>, String> {
        let Some(config) = &self.auth_config else {
            return Ok(None);
        };
        Ok(Some(match self.store()? {
            Some(store) => config.clone().with_store(store),
            None => config.clone(),
        }))
    }

    /// The authenticator: every configured scheme, first match wins.
    pub(crate) fn authenticator(&self) -> Result<BoxAuthenticator, String> {
        #[cfg(feature = "config")]
        if let Some(config) = self.file_config()? {
            return config.authenticator().map_err(|e| e.to_string());
        }
        let store = self.store()?;
        let mut auth = NoAuthenticator.boxed();
        if self.client_ca.is_some() || self.mtls {
            auth = auth.or(grpc_auth::authn::MtlsAuthenticator::new()).boxed();
        }
        let mut basic = None;
        if !self.basic_users.is_empty() {
            let mut b = BasicAuthenticator::new();
            for (user, password) in &self.basic_users {
                b = if password.starts_with("$argon2") {
                    b.hashed_user(user, password).map_err(|e| e.to_string())?
                } else {
                    b.user(user, password.as_str())
                };
            }
            if let Some(store) = &store {
                b = b.failure_store(store.clone());
            }
            basic = Some(match &self.basic_verifications {
                Some(counter) => Counted(b, counter.clone()).boxed(),
                None => b.boxed(),
            });
        }
        if self.issue_tokens {
            // First: it claims only its own tokens (by `iss`), other bearers fall through.
            let login = basic.take().ok_or("issuing tokens needs Basic users")?;
            if let Some(store) = &store {
                // Opaque tokens in the shared store: valid on every replica, revocable,
                // and they outlive a restart.
                let mut tokens = OpaqueTokens::new(StoreTokens::new(store.clone()), TOKEN_AUDIENCE)
                    .revocations(Revocations::new(store.clone()));
                if let Some(ttl) = self.token_ttl {
                    tokens = tokens.ttl(ttl);
                }
                auth = auth.or(TokenExchange::new(login, tokens)).boxed();
            } else {
                let keys = match &self.token_keys {
                    Some(k) => k.clone(),
                    None => random_token_keys()?,
                };
                let mut tokens = SignedTokens::new(keys, TOKEN_AUDIENCE);
                if let Some(ttl) = self.token_ttl {
                    tokens = tokens.ttl(ttl);
                }
                auth = auth.or(TokenExchange::new(login, tokens)).boxed();
            }
        }
        let mut keys = StaticKeys::new();
        let mut any_jwt = false;
        if let Some(secret) = &self.jwt_hs256_secret {
            keys = keys.with(
                JwtKey::secret(Algorithm::HS256, secret.as_bytes()).map_err(|e| e.to_string())?,
            );
            any_jwt = true;
        }
        for pem in &self.jwt_public_keys {
            keys = keys.with(pem_key(pem)?);
            any_jwt = true;
        }
        if !self.jwks_urls.is_empty() || !self.oidc_issuers.is_empty() {
            if any_jwt {
                return Err("--jwks-url/--oidc-issuer cannot be combined with \
                    --jwt-hs256-secret/--jwt-public-key"
                    .into());
            }
            auth = auth.or(self.remote_jwt(&store)?).boxed();
        } else if any_jwt {
            let mut jwt = JwtAuthenticator::new(keys);
            if let Some(iss) = &self.jwt_issuer {
                jwt = jwt.issuer(iss);
            }
            auth = auth.or(self.finish_jwt(jwt, &store)).boxed();
        }
        if let Some(i) = &self.introspection {
            auth = auth.or(introspection(i)?).boxed();
        }
        if let Some(basic) = basic {
            auth = auth.or(basic).boxed();
        }
        if !self.api_keys.is_empty() {
            let mut keys = ApiKeyAuthenticator::new();
            for (key, who) in &self.api_keys {
                keys = keys.key(key, who);
            }
            auth = auth.or(keys).boxed();
        }
        if !self.hmac_keys.is_empty() {
            let keys: StaticHmacKeys = self.hmac_keys.iter().cloned().collect();
            let mut verifier = HmacVerifier::new(keys);
            if let Some(store) = &store {
                verifier = verifier.replay_store(store.clone());
            }
            auth = auth.or(HmacAuthenticator::new(verifier)).boxed();
        }
        Ok(auth)
    }

    /// JWT with remote keys: one source alone, or several routed by `iss` (each
    /// `--oidc-issuer` under its own issuer, a `--jwks-url` under `--jwt-issuer`).
    #[cfg(feature = "jwks")]
    fn remote_jwt(&self, store: &Option<SharedStore>) -> Result<BoxAuthenticator, String> {
        let mut sources = Vec::new();
        for url in &self.jwks_urls {
            let keys = JwksKeys::builder(url).build().map_err(|e| e.to_string())?;
            sources.push((self.jwt_issuer.clone(), keys));
        }
        for iss in &self.oidc_issuers {
            let keys = JwksKeys::builder_for_issuer(iss)
                .build()
                .map_err(|e| e.to_string())?;
            sources.push((Some(iss.clone()), keys));
        }
        if let [(iss, keys)] = &sources[..] {
            let mut jwt = JwtAuthenticator::new(keys.clone());
            if let Some(iss) = iss {
                jwt = jwt.issuer(iss);
            }
            return Ok(self.finish_jwt(jwt, store).boxed());
        }
        let mut by_issuer = IssuerKeys::new();
        for (iss, keys) in sources {
            let iss = iss.ok_or("with several key sources, a --jwks-url needs --jwt-issuer")?;
            if by_issuer.get(&iss).is_some() {
                return Err(format!("two key sources for issuer {iss}"));
            }
            by_issuer = by_issuer.issuer(iss, keys);
        }
        Ok(self
            .finish_jwt(JwtAuthenticator::new(by_issuer), store)
            .boxed())
    }

    #[cfg(not(feature = "jwks"))]
    fn remote_jwt(&self, _: &Option<SharedStore>) -> Result<BoxAuthenticator, String> {
        Err("--jwks-url/--oidc-issuer need grpc-auth's `jwks` feature".into())
    }

    /// The audience, and revocations from the shared store.
    fn finish_jwt<K: KeySource>(
        &self,
        mut jwt: JwtAuthenticator<K>,
        store: &Option<SharedStore>,
    ) -> JwtAuthenticator<K> {
        if let Some(aud) = &self.jwt_audience {
            jwt = jwt.audience(aud);
        }
        if let Some(store) = store {
            jwt = jwt.revocations(Revocations::new(store.clone()));
        }
        jwt
    }

    /// The policy: health checks and `--public` methods are public, `--require-scope`
    /// adds scopes, everything else needs an authenticated caller.
    pub(crate) fn policy(&self) -> Policy {
        #[cfg(feature = "config")]
        if let Some(config) = &self.auth_config {
            // Checked when the file was loaded; should it fail, nothing is allowed.
            return config
                .policy()
                .unwrap_or_else(|_| Policy::new().default_rule(grpc_auth::Rule::Deny));
        }
        let mut policy = Policy::new().public("/grpc.health.v1.Health/*");
        for p in &self.public {
            policy = policy.public(p);
        }
        for (path, scope) in &self.require_scope {
            policy = policy.require_scope(path, scope);
        }
        policy
    }

    pub(crate) fn layer(&self) -> Result<AuthLayer<BoxAuthenticator>, String> {
        #[cfg(feature = "config")]
        if let Some(config) = self.file_config()? {
            let layer = config.layer().map_err(|e| e.to_string())?;
            return Ok(match &self.authz_policy {
                Some(p) => layer.authorization_policy(p.clone()),
                None => layer,
            });
        }
        let layer = AuthLayer::new(self.authenticator()?).policy(self.policy());
        Ok(match &self.authz_policy {
            Some(p) => layer.authorization_policy(p.clone()),
            None => layer,
        })
    }
}

/// The introspection authenticator `--introspection-url`/`--introspection-issuer` configure.
#[cfg(feature = "jwks")]
fn introspection(i: &Introspection) -> Result<BoxAuthenticator, String> {
    use grpc_auth::authn::IntrospectionAuthenticator;
    use grpc_auth::oauth::ClientAuth;
    let auth = ClientAuth::secret_basic(&i.client_id, i.client_secret.as_str());
    let mut b = match &i.endpoint {
        IntrospectionEndpoint::Url(url) => IntrospectionAuthenticator::builder(url, auth),
        IntrospectionEndpoint::Issuer(iss) => {
            IntrospectionAuthenticator::builder_for_issuer(iss, auth)
        }
    };
    if let Some(ttl) = i.cache_ttl {
        b = b.cache_ttl(ttl);
    }
    if let Some(aud) = &i.audience {
        b = b.audience(aud);
    }
    Ok(b.build().map_err(|e| e.to_string())?.boxed())
}

#[cfg(not(feature = "jwks"))]
fn introspection(_: &Introspection) -> Result<BoxAuthenticator, String> {
    Err("--introspection-url/--introspection-issuer need grpc-auth's `jwks` feature".into())
}

/// Serves the greeter (and a health service) behind the auth layer on `listener`.
pub(crate) async fn serve(
    listener: TcpListener,
    config: &ServerConfig,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let layer = config.layer()?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<GreeterServer<MyGreeter>>().await;
    let mut builder = tonic::transport::Server::builder();
    if let Some((cert, key)) = &config.tls {
        let identity = tonic::transport::Identity::from_pem(cert, key);
        let mut tls = tonic::transport::ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &config.client_ca {
            // Verified when presented; optional, so other schemes serve callers without.
            tls = tls
                .client_ca_root(tonic::transport::Certificate::from_pem(ca))
                .client_auth_optional(true);
        }
        builder = builder.tls_config(tls)?;
    } else if config.client_ca.is_some() {
        return Err("client certificates need TLS (--tls-cert, --tls-key)".into());
    }
    builder
        .timeout(Duration::from_secs(30))
        .layer(layer)
        .add_service(health_service)
        .add_service(GreeterServer::new(MyGreeter))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
        .await?;
    Ok(())
}

/// Starts the server on 127.0.0.1:0 in the background and returns its address.
pub(crate) async fn spawn(config: ServerConfig) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        if let Err(e) = serve(listener, &config).await {
            eprintln!("greeter server failed: {e}");
        }
    });
    addr
}
