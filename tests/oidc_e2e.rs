//! End to end against a real identity provider (issue 14): panva's `oidc-provider`
//! (tests/support/oidc.rs, tests/oidc/provider.mjs) issues the tokens; this crate's
//! client token sources fetch them and carry them over TLS to the greeter
//! (examples/support/greeter.rs) behind this crate's server layer, which verifies JWTs
//! by the JWKS found by OpenID Connect discovery and opaque tokens by introspection.
//! Each case asserts the exact code and message, or the principal in the greeting, and
//! where it matters the provider's request counters.
//!
//! Each test starts its own provider (about a second), so counters are exact and the
//! tests run in parallel. They skip when `npm ci --prefix tests/oidc` was not run, and
//! fail then under `GRPC_AUTH_REQUIRE_INTEROP=1`.
#![cfg(feature = "jwks")]

#[path = "../examples/support/greeter.rs"]
mod greeter;
#[path = "support/oidc.rs"]
mod oidc;
#[path = "../examples/support/tls.rs"]
mod tls;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use grpc_auth::credentials::{
    BearerToken, CallCredentials, ClientCredentials, CredentialsLayer, CredentialsService,
    FileTokenSource, Token, TokenError, TokenExchangeSource, TokenSource, TokenSourceCredentials,
};
use grpc_auth::oauth::ClientAuth;
use grpc_auth_protos::helloworld::HelloRequest;
use grpc_auth_protos::helloworld::greeter_client::GreeterClient;
use jsonwebtoken::Algorithm;
use oidc::{OidcProvider, Options, Stats};
use tonic::Code;
use tonic::transport::Channel;

type Reply = Result<String, (Code, String)>;

/// The kid the `private_key_jwt` client's key is registered under.
const PKJWT_KID: &str = "grpc-auth-e2e-rsa";
/// The method that needs `greeter.admin` on the token-file server.
const ADMIN: &str = "/helloworld.Greeter/SayHelloAdmin";
/// How long a poll for something that should happen within a few seconds may last.
const DEADLINE: Duration = Duration::from_secs(10);

// --- The provider, driven off the runtime's workers ------------------------------------

/// A started provider; its blocking helpers run on `spawn_blocking`.
struct Idp {
    provider: Arc<Mutex<OidcProvider>>,
    issuer: String,
    token_url: String,
    introspection_url: String,
}

impl Idp {
    /// A provider with `opts`; `None` (the test skips) when it cannot run here.
    async fn start(opts: Options) -> Option<Self> {
        let provider = tokio::task::spawn_blocking(move || OidcProvider::start_with(&opts))
            .await
            .expect("start the provider")?;
        Some(Self {
            issuer: provider.issuer(),
            token_url: provider.token_url(),
            introspection_url: provider.introspection_url(),
            provider: Arc::new(Mutex::new(provider)),
        })
    }

    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut OidcProvider) -> R + Send + 'static,
    ) -> R {
        let provider = self.provider.clone();
        tokio::task::spawn_blocking(move || f(&mut provider.lock().unwrap()))
            .await
            .expect("provider helper")
    }

    async fn stats(&self) -> Stats {
        self.run(|p| p.stats()).await
    }

    /// A token of [`oidc::CLIENT_ID`] fetched by the harness (not by the crate).
    async fn token(&self, resource: &'static str, scope: &'static str) -> String {
        self.run(move |p| p.client_credentials_token(Some(resource), scope))
            .await
    }

    async fn revoke(&self, token: String) {
        self.run(move |p| p.revoke(&token)).await
    }

    async fn stop(&self) {
        self.run(|p| p.stop()).await
    }

    async fn log(&self) -> String {
        self.run(|p| p.log()).await
    }

    fn client_credentials(&self, auth: ClientAuth, resource: &str) -> ClientCredentials {
        ClientCredentials::builder(&self.token_url, auth)
            .resource(resource)
            .scope("greeter.read")
            .build()
            .expect("client credentials")
    }

    /// The server's introspection as the resource server client.
    fn introspection(
        &self,
        endpoint: greeter::IntrospectionEndpoint,
        secret: &str,
        cache_ttl: Option<Duration>,
    ) -> greeter::Introspection {
        greeter::Introspection {
            endpoint,
            client_id: oidc::RS_CLIENT_ID.into(),
            client_secret: secret.into(),
            cache_ttl,
            audience: None,
        }
    }

    fn introspection_url(&self) -> greeter::IntrospectionEndpoint {
        greeter::IntrospectionEndpoint::Url(self.introspection_url.clone())
    }

    /// JWTs verified by the keys discovery finds, for the JWT resource.
    fn jwt_config(&self) -> greeter::ServerConfig {
        greeter::ServerConfig {
            oidc_issuers: vec![self.issuer.clone()],
            jwt_audience: Some(oidc::JWT_RESOURCE.into()),
            ..Default::default()
        }
    }
}

fn basic() -> ClientAuth {
    ClientAuth::secret_basic(oidc::CLIENT_ID, oidc::CLIENT_SECRET)
}

// --- The greeter over TLS, called through the crate's credentials ----------------------

struct Server {
    port: u16,
    ca_pem: String,
}

async fn server(mut config: greeter::ServerConfig) -> Server {
    let pki = tls::test_pki();
    config.tls = Some((pki.cert_pem.into_bytes(), pki.key_pem.into_bytes()));
    let addr = greeter::spawn(config).await;
    Server {
        port: addr.port(),
        ca_pem: pki.ca_pem,
    }
}

type Client<C> = GreeterClient<CredentialsService<Channel, C>>;

/// A greeter client over one TLS channel, every call carrying `creds`.
async fn client<C: CallCredentials>(s: &Server, creds: C) -> Client<C> {
    let channel = tls::channel(s.port, &s.ca_pem).await;
    let target = format!("https://127.0.0.1:{}", s.port).parse().unwrap();
    GreeterClient::new(
        tower::ServiceBuilder::new()
            .layer(CredentialsLayer::new(creds, target))
            .service(channel),
    )
}

fn request() -> tonic::Request<HelloRequest> {
    tonic::Request::new(HelloRequest { name: "Ada".into() })
}

async fn hello<C: CallCredentials>(c: &Client<C>) -> Reply {
    c.clone()
        .say_hello(request())
        .await
        .map(|r| r.into_inner().message)
        .map_err(|s| (s.code(), s.message().to_owned()))
}

async fn hello_admin<C: CallCredentials>(c: &Client<C>) -> Reply {
    c.clone()
        .say_hello_admin(request())
        .await
        .map(|r| r.into_inner().message)
        .map_err(|s| (s.code(), s.message().to_owned()))
}

/// One call with a static bearer token.
async fn hello_with(s: &Server, token: &str) -> Reply {
    hello(&client(s, BearerToken::new(token)).await).await
}

fn greeting(sub: &str, scheme: &str) -> Reply {
    Ok(format!("Hello Ada, authenticated as {sub} via {scheme}"))
}

fn refused(code: Code, message: &str) -> Reply {
    Err((code, message.to_owned()))
}

/// The `Bearer` value the credentials hold (no fetch when cached), without the scheme.
async fn held<S: TokenSource>(creds: &TokenSourceCredentials<S>) -> String {
    let value = creds.header_value().await.expect("a token");
    value
        .to_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_owned()
}

/// The JWT's claims, unverified.
fn claims(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The JWK Set (one RS256 public key, kid [`PKJWT_KID`]) of tests/keys/rsa_public.pem.
fn pkjwt_jwks() -> String {
    use x509_parser::prelude::FromDer;
    use x509_parser::public_key::PublicKey;
    use x509_parser::x509::SubjectPublicKeyInfo;
    let (_, pem) = x509_parser::pem::parse_x509_pem(include_bytes!("keys/rsa_public.pem"))
        .expect("PEM public key");
    let (_, spki) = SubjectPublicKeyInfo::from_der(&pem.contents).expect("SPKI");
    let Ok(PublicKey::RSA(rsa)) = spki.parsed() else {
        panic!("tests/keys/rsa_public.pem is not an RSA key");
    };
    let unsigned = |b: &[u8]| {
        let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
        URL_SAFE_NO_PAD.encode(&b[start..])
    };
    serde_json::json!({
        "keys": [{
            "kty": "RSA",
            "kid": PKJWT_KID,
            "alg": "RS256",
            "use": "sig",
            "n": unsigned(rsa.modulus),
            "e": unsigned(rsa.exponent),
        }]
    })
    .to_string()
}

/// Calls `call` until it answers something other than `while_`, or the deadline.
async fn until_not<F, Fut>(while_: &Reply, mut call: F) -> Reply
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        let got = call().await;
        if &got != while_ || Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// --- 1. Client credentials, JWTs verified by discovered keys ---------------------------

#[tokio::test]
async fn client_credentials_jwts_are_verified_by_the_keys_discovery_finds() {
    let Some(idp) = Idp::start(Options {
        pkjwt_jwks: Some(pkjwt_jwks()),
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let s = server(idp.jwt_config()).await;

    // client_secret_basic at the configured token endpoint.
    let creds = TokenSourceCredentials::new(idp.client_credentials(basic(), oidc::JWT_RESOURCE));
    let c = client(&s, creds.clone()).await;
    assert_eq!(hello(&c).await, greeting(oidc::CLIENT_ID, "jwt"));
    let token = held(&creds).await;
    let claims = claims(&token);
    assert_eq!(claims["aud"], oidc::JWT_RESOURCE, "{claims}");
    assert_eq!(claims["scope"], "greeter.read", "{claims}");
    assert_eq!(claims["iss"], idp.issuer.as_str(), "{claims}");
    assert_eq!(hello(&c).await, greeting(oidc::CLIENT_ID, "jwt"));
    assert_eq!(idp.stats().await.token, 1, "the token is reused");

    // The token endpoint found by discovery.
    let discovered = ClientCredentials::builder_for_issuer(&idp.issuer, basic())
        .resource(oidc::JWT_RESOURCE)
        .scope("greeter.read")
        .build()
        .unwrap();
    let c = client(&s, TokenSourceCredentials::new(discovered)).await;
    assert_eq!(hello(&c).await, greeting(oidc::CLIENT_ID, "jwt"));

    // client_secret_post.
    let post = ClientAuth::secret_post(oidc::POST_CLIENT_ID, oidc::POST_CLIENT_SECRET);
    let c = client(
        &s,
        TokenSourceCredentials::new(idp.client_credentials(post, oidc::JWT_RESOURCE)),
    )
    .await;
    assert_eq!(hello(&c).await, greeting(oidc::POST_CLIENT_ID, "jwt"));

    // private_key_jwt (RFC 7523), signed with tests/keys/rsa_private.pem.
    let pkjwt = ClientAuth::private_key_jwt(
        oidc::PKJWT_CLIENT_ID,
        Algorithm::RS256,
        include_bytes!("keys/rsa_private.pem"),
    )
    .unwrap()
    .key_id(PKJWT_KID);
    let c = client(
        &s,
        TokenSourceCredentials::new(idp.client_credentials(pkjwt, oidc::JWT_RESOURCE)),
    )
    .await;
    assert_eq!(
        hello(&c).await,
        greeting(oidc::PKJWT_CLIENT_ID, "jwt"),
        "provider log: {}",
        idp.log().await
    );

    // A client secret sent the wrong way is the provider's invalid_client: a refusal.
    let wrong = ClientAuth::secret_basic(oidc::POST_CLIENT_ID, oidc::POST_CLIENT_SECRET);
    let c = client(
        &s,
        TokenSourceCredentials::new(idp.client_credentials(wrong, oidc::JWT_RESOURCE)),
    )
    .await;
    assert_eq!(
        hello(&c).await,
        refused(
            Code::Unauthenticated,
            &format!(
                "token source refused: token endpoint {} refused: invalid_client",
                idp.token_url
            )
        )
    );
    assert_eq!(idp.stats().await.introspection, 0);
}

// --- 2. Opaque tokens introspected, JWTs verified locally on the same server ------------

#[tokio::test]
async fn opaque_tokens_are_introspected_and_jwts_verified_locally() {
    let Some(idp) = Idp::start(Options::default()).await else {
        return;
    };
    let s = server(greeter::ServerConfig {
        introspection: Some(idp.introspection(
            idp.introspection_url(),
            oidc::RS_CLIENT_SECRET,
            None,
        )),
        ..idp.jwt_config()
    })
    .await;

    let opaque =
        TokenSourceCredentials::new(idp.client_credentials(basic(), oidc::OPAQUE_RESOURCE));
    let c = client(&s, opaque.clone()).await;
    assert_eq!(hello(&c).await, greeting(oidc::CLIENT_ID, "introspection"));
    assert_eq!(
        held(&opaque).await.split('.').count(),
        1,
        "an opaque token, not a JWT"
    );
    assert_eq!(
        idp.stats().await,
        Stats {
            token: 1,
            introspection: 1,
            revocation: 0
        }
    );
    assert_eq!(hello(&c).await, greeting(oidc::CLIENT_ID, "introspection"));
    assert_eq!(idp.stats().await.introspection, 1, "the answer is cached");

    let jwt = TokenSourceCredentials::new(idp.client_credentials(basic(), oidc::JWT_RESOURCE));
    let c = client(&s, jwt).await;
    assert_eq!(hello(&c).await, greeting(oidc::CLIENT_ID, "jwt"));
    assert_eq!(hello(&c).await, greeting(oidc::CLIENT_ID, "jwt"));
    assert_eq!(
        idp.stats().await,
        Stats {
            token: 2,
            introspection: 1,
            revocation: 0
        },
        "the JWT is verified locally, never introspected"
    );
}

// --- 3. Revocation at the provider -----------------------------------------------------

#[tokio::test]
async fn a_revoked_opaque_token_serves_while_cached_then_is_inactive() {
    let Some(idp) = Idp::start(Options::default()).await else {
        return;
    };
    // The positive cache counts whole seconds (an entry made at t serves until
    // floor(t) + ttl): 2 s leaves at least 1 s of caching, whatever the sub-second.
    let s = server(greeter::ServerConfig {
        introspection: Some(idp.introspection(
            idp.introspection_url(),
            oidc::RS_CLIENT_SECRET,
            Some(Duration::from_secs(2)),
        )),
        ..Default::default()
    })
    .await;
    let token = idp.token(oidc::OPAQUE_RESOURCE, "greeter.read").await;
    let c = client(&s, BearerToken::new(&token)).await;
    let first = Instant::now();
    assert_eq!(hello(&c).await, greeting(oidc::CLIENT_ID, "introspection"));
    idp.revoke(token.clone()).await;
    let answer = idp.run(move |p| p.introspect(&token)).await;
    assert_eq!(answer, serde_json::json!({"active": false}));
    let before = idp.stats().await;
    assert_eq!(
        hello(&c).await,
        greeting(oidc::CLIENT_ID, "introspection"),
        "still cached"
    );
    assert_eq!(idp.stats().await.introspection, before.introspection);

    let ok = greeting(oidc::CLIENT_ID, "introspection");
    assert_eq!(
        until_not(&ok, || hello(&c)).await,
        refused(Code::Unauthenticated, "inactive token")
    );
    assert!(
        first.elapsed() < Duration::from_secs(5),
        "refused once the 2 s cache expired, not {:?} later",
        first.elapsed()
    );
    assert_eq!(
        idp.stats().await.introspection,
        before.introspection + 1,
        "asked once more when the entry expired"
    );
    assert_eq!(
        hello(&c).await,
        refused(Code::Unauthenticated, "inactive token")
    );
    assert_eq!(
        idp.stats().await.introspection,
        before.introspection + 1,
        "the refusal is cached too"
    );
}

// --- 4. The provider down --------------------------------------------------------------

#[tokio::test]
async fn with_the_provider_down_cached_answers_serve_and_the_rest_is_unavailable() {
    let Some(idp) = Idp::start(Options::default()).await else {
        return;
    };
    let s = server(greeter::ServerConfig {
        introspection: Some(idp.introspection(
            idp.introspection_url(),
            oidc::RS_CLIENT_SECRET,
            None,
        )),
        ..idp.jwt_config()
    })
    .await;
    let seen = idp.token(oidc::OPAQUE_RESOURCE, "greeter.read").await;
    let unseen = idp.token(oidc::OPAQUE_RESOURCE, "greeter.read").await;
    let seen_client = client(&s, BearerToken::new(&seen)).await;
    assert_eq!(
        hello(&seen_client).await,
        greeting(oidc::CLIENT_ID, "introspection")
    );
    let fresh = TokenSourceCredentials::new(idp.client_credentials(basic(), oidc::OPAQUE_RESOURCE));
    let discovered = TokenSourceCredentials::new(
        ClientCredentials::builder_for_issuer(&idp.issuer, basic())
            .resource(oidc::OPAQUE_RESOURCE)
            .build()
            .unwrap(),
    );

    idp.stop().await;

    assert_eq!(
        hello(&seen_client).await,
        greeting(oidc::CLIENT_ID, "introspection"),
        "a cached answer serves while the provider is down"
    );
    let (code, message) = hello_with(&s, &unseen).await.unwrap_err();
    assert_eq!(code, Code::Unavailable, "{message}");
    assert!(
        message.starts_with("token introspection unavailable: "),
        "{message}"
    );
    assert!(!message.contains(&unseen), "the token is not shown");
    let (code, again) = hello_with(&s, &unseen).await.unwrap_err();
    assert_eq!(
        (code, again),
        (Code::Unavailable, message),
        "unavailability is not cached as an answer"
    );

    // The client's token source: UNAVAILABLE before anything is sent.
    let c = client(&s, fresh).await;
    let (code, message) = hello(&c).await.unwrap_err();
    assert_eq!(code, Code::Unavailable, "{message}");
    let prefix = format!("token source unavailable: POST {}: ", idp.token_url);
    assert!(message.starts_with(&prefix), "{message}");
    let c = client(&s, discovered).await;
    let (code, message) = hello(&c).await.unwrap_err();
    assert_eq!(code, Code::Unavailable, "{message}");
    let prefix = format!(
        "token source unavailable: GET {}/.well-known/openid-configuration: ",
        idp.issuer
    );
    assert!(message.starts_with(&prefix), "{message}");
}

// --- 5. A token file rewritten on disk -------------------------------------------------

#[tokio::test]
async fn a_rewritten_token_file_is_picked_up() {
    let Some(idp) = Idp::start(Options::default()).await else {
        return;
    };
    let s = server(greeter::ServerConfig {
        require_scope: vec![(ADMIN.into(), "greeter.admin".into())],
        ..idp.jwt_config()
    })
    .await;
    let dir = temp_dir("token-file");
    let path = dir.join("token");
    let read = idp.token(oidc::JWT_RESOURCE, "greeter.read").await;
    let admin = idp
        .token(oidc::JWT_RESOURCE, "greeter.read greeter.admin")
        .await;
    replace_file(&path, &read);

    let source = FileTokenSource::new(&path).reread_every(Duration::from_secs(1));
    // No refresh ahead: the token is used until the re-read interval ends, then read again.
    let creds = TokenSourceCredentials::new(source).refresh_ahead(Duration::ZERO);
    let c = client(&s, creds.clone()).await;
    assert_eq!(hello(&c).await, greeting(oidc::CLIENT_ID, "jwt"));
    let denied = refused(Code::PermissionDenied, "missing scope: greeter.admin");
    assert_eq!(hello_admin(&c).await, denied);

    // As the kubelet does: write aside, rename over.
    let written = Instant::now();
    replace_file(&path, &admin);
    let got = until_not(&denied, || hello_admin(&c)).await;
    assert_eq!(
        got,
        Ok(format!(
            "[admin] Hello Ada, authenticated as {} via jwt",
            oidc::CLIENT_ID
        ))
    );
    assert!(
        written.elapsed() < Duration::from_secs(4),
        "picked up within the 1 s re-read interval, not {:?}",
        written.elapsed()
    );
    assert_eq!(held(&creds).await, admin);
    let _ = std::fs::remove_dir_all(&dir);
}

fn temp_dir(what: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "grpc-auth-oidc-e2e-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `content` beside `path`, then renames it over `path` (atomic).
fn replace_file(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

// --- 6. Many concurrent calls, one token, one introspection ----------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_share_one_token_fetch_and_one_introspection() {
    let Some(idp) = Idp::start(Options::default()).await else {
        return;
    };
    let s = server(greeter::ServerConfig {
        introspection: Some(idp.introspection(
            idp.introspection_url(),
            oidc::RS_CLIENT_SECRET,
            None,
        )),
        ..Default::default()
    })
    .await;
    let creds = TokenSourceCredentials::new(idp.client_credentials(basic(), oidc::OPAQUE_RESOURCE));
    let c = client(&s, creds).await;
    assert_eq!(idp.stats().await, Stats::default());
    let start = Arc::new(tokio::sync::Barrier::new(64));
    let calls: Vec<_> = (0..64)
        .map(|_| {
            let c = c.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                hello(&c).await
            })
        })
        .collect();
    for call in calls {
        assert_eq!(
            call.await.unwrap(),
            greeting(oidc::CLIENT_ID, "introspection")
        );
    }
    assert_eq!(
        idp.stats().await,
        Stats {
            token: 1,
            introspection: 1,
            revocation: 0
        }
    );
}

// --- 7. Token exchange -----------------------------------------------------------------

#[tokio::test]
async fn an_exchanged_token_is_accepted_as_the_subject() {
    let Some(idp) = Idp::start(Options::default()).await else {
        return;
    };
    let s = server(greeter::ServerConfig {
        introspection: Some(idp.introspection(
            idp.introspection_url(),
            oidc::RS_CLIENT_SECRET,
            None,
        )),
        ..idp.jwt_config()
    })
    .await;
    let rs = || ClientAuth::secret_basic(oidc::RS_CLIENT_ID, oidc::RS_CLIENT_SECRET);

    // A JWT subject exchanged for a JWT: `sub` stays the subject's, `act` names the
    // exchanging client.
    let sts = TokenExchangeSource::builder(
        &idp.token_url,
        idp.client_credentials(basic(), oidc::JWT_RESOURCE),
    )
    .subject_token_type(oidc::JWT_TOKEN_TYPE)
    .resource(oidc::JWT_RESOURCE)
    .client(rs())
    .build()
    .unwrap();
    let creds = TokenSourceCredentials::new(sts);
    let c = client(&s, creds.clone()).await;
    assert_eq!(hello(&c).await, greeting(oidc::CLIENT_ID, "jwt"));
    let exchanged = claims(&held(&creds).await);
    assert_eq!(exchanged["sub"], oidc::CLIENT_ID, "{exchanged}");
    assert_eq!(exchanged["client_id"], oidc::RS_CLIENT_ID, "{exchanged}");
    assert_eq!(exchanged["act"]["sub"], oidc::RS_CLIENT_ID, "{exchanged}");
    assert_eq!(exchanged["aud"], oidc::JWT_RESOURCE, "{exchanged}");
    assert_eq!(exchanged["scope"], "greeter.read", "{exchanged}");
    assert_eq!(
        idp.stats().await.token,
        2,
        "the subject's token, then the exchange"
    );

    // Exchanged for an opaque token: introspected, the subject's `sub` again.
    let sts = TokenExchangeSource::builder(
        &idp.token_url,
        idp.client_credentials(basic(), oidc::JWT_RESOURCE),
    )
    .subject_token_type(oidc::JWT_TOKEN_TYPE)
    .resource(oidc::OPAQUE_RESOURCE)
    .client(rs())
    .build()
    .unwrap();
    let creds = TokenSourceCredentials::new(sts);
    let c = client(&s, creds.clone()).await;
    assert_eq!(hello(&c).await, greeting(oidc::CLIENT_ID, "introspection"));
    let token = held(&creds).await;
    let answer = idp.run(move |p| p.introspect(&token)).await;
    assert_eq!(answer["sub"], oidc::CLIENT_ID, "{answer}");
    assert_eq!(answer["client_id"], oidc::RS_CLIENT_ID, "{answer}");
    assert_eq!(idp.stats().await.token, 4);
}

// --- 8. Introspection refusals ---------------------------------------------------------

#[tokio::test]
async fn introspection_refuses_a_jwt_and_a_misconfigured_server_is_unavailable() {
    let Some(idp) = Idp::start(Options::default()).await else {
        return;
    };
    // Introspection alone: a JWT reaches the endpoint, which does not introspect JWTs.
    let alone = server(greeter::ServerConfig {
        introspection: Some(idp.introspection(
            idp.introspection_url(),
            oidc::RS_CLIENT_SECRET,
            None,
        )),
        ..Default::default()
    })
    .await;
    let jwt = idp.token(oidc::JWT_RESOURCE, "greeter.read").await;
    assert_eq!(
        hello_with(&alone, &jwt).await,
        refused(
            Code::Unauthenticated,
            "token refused by the introspection endpoint"
        )
    );
    assert_eq!(idp.stats().await.introspection, 1);

    // The server's own client secret is wrong: not a verdict on the token, never cached.
    let wrong = server(greeter::ServerConfig {
        introspection: Some(idp.introspection(idp.introspection_url(), "not-the-secret", None)),
        ..Default::default()
    })
    .await;
    let opaque = idp.token(oidc::OPAQUE_RESOURCE, "greeter.read").await;
    let misconfigured = refused(
        Code::Unavailable,
        "token introspection refused this server's request (invalid_client)",
    );
    assert_eq!(hello_with(&wrong, &opaque).await, misconfigured);
    assert_eq!(idp.stats().await.introspection, 2);
    assert_eq!(hello_with(&wrong, &opaque).await, misconfigured);
    assert_eq!(
        idp.stats().await.introspection,
        3,
        "asked again: not cached"
    );
    // The token itself is fine.
    assert_eq!(
        hello_with(&alone, &opaque).await,
        greeting(oidc::CLIENT_ID, "introspection")
    );
}

// --- 9. The introspection endpoint found by discovery ----------------------------------

#[tokio::test]
async fn the_introspection_endpoint_is_found_by_discovery() {
    let Some(idp) = Idp::start(Options::default()).await else {
        return;
    };
    let s = server(greeter::ServerConfig {
        introspection: Some(idp.introspection(
            greeter::IntrospectionEndpoint::Issuer(idp.issuer.clone()),
            oidc::RS_CLIENT_SECRET,
            None,
        )),
        ..Default::default()
    })
    .await;
    let c = client(
        &s,
        TokenSourceCredentials::new(idp.client_credentials(basic(), oidc::OPAQUE_RESOURCE)),
    )
    .await;
    assert_eq!(hello(&c).await, greeting(oidc::CLIENT_ID, "introspection"));
    assert_eq!(idp.stats().await.introspection, 1);
    let token = idp.token(oidc::OPAQUE_RESOURCE, "greeter.read").await;
    idp.revoke(token.clone()).await;
    assert_eq!(
        hello_with(&s, &token).await,
        refused(Code::Unauthenticated, "inactive token")
    );
}

// --- 10. A token revoked upstream while the client holds it ----------------------------

/// Fetches one token from `inner` and hands that same token back every time.
struct SameToken {
    inner: ClientCredentials,
    token: tokio::sync::OnceCell<Token>,
    fetches: AtomicUsize,
}

impl TokenSource for SameToken {
    async fn fetch(&self) -> Result<Token, TokenError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.token
            .get_or_try_init(|| self.inner.fetch())
            .await
            .cloned()
    }
}

#[tokio::test]
async fn a_token_refused_after_revocation_is_fetched_anew_once() {
    let Some(idp) = Idp::start(Options::default()).await else {
        return;
    };
    let s = server(greeter::ServerConfig {
        introspection: Some(idp.introspection(
            idp.introspection_url(),
            oidc::RS_CLIENT_SECRET,
            Some(Duration::from_secs(2)),
        )),
        ..Default::default()
    })
    .await;
    let ok = greeting(oidc::CLIENT_ID, "introspection");
    let inactive = refused(Code::Unauthenticated, "inactive token");

    let creds = TokenSourceCredentials::new(idp.client_credentials(basic(), oidc::OPAQUE_RESOURCE));
    let c = client(&s, creds.clone()).await;
    assert_eq!(hello(&c).await, ok);
    let first = held(&creds).await;
    assert_eq!(idp.stats().await.token, 1);
    idp.revoke(first.clone()).await;
    // Served from the server's cache until it expires, then refused: the credentials
    // drop the token they hold.
    assert_eq!(until_not(&ok, || hello(&c)).await, inactive);
    assert_eq!(idp.stats().await.token, 1, "nothing fetched yet");
    // The next call fetches a new token and succeeds.
    assert_eq!(hello(&c).await, ok);
    assert_eq!(idp.stats().await.token, 2);
    let second = held(&creds).await;
    assert_ne!(second, first);
    assert_eq!(hello(&c).await, ok);
    assert_eq!(idp.stats().await.token, 2, "the new token is kept");

    // A source that hands the refused token back: fetched once more, then kept, no loop.
    let same = Arc::new(SameToken {
        inner: idp.client_credentials(basic(), oidc::OPAQUE_RESOURCE),
        token: tokio::sync::OnceCell::new(),
        fetches: AtomicUsize::new(0),
    });
    let creds = TokenSourceCredentials::new(same.clone());
    let c = client(&s, creds.clone()).await;
    assert_eq!(hello(&c).await, ok);
    assert_eq!(idp.stats().await.token, 3);
    idp.revoke(held(&creds).await).await;
    assert_eq!(until_not(&ok, || hello(&c)).await, inactive);
    assert_eq!(same.fetches.load(Ordering::SeqCst), 1);
    for _ in 0..5 {
        assert_eq!(hello(&c).await, inactive);
    }
    assert_eq!(
        same.fetches.load(Ordering::SeqCst),
        2,
        "fetched once more after the refusal, then the same token kept"
    );
    assert_eq!(
        idp.stats().await.token,
        3,
        "no request reached the provider"
    );
}
