//! Token introspection (RFC 7662) end to end: a real tonic server on 127.0.0.1:0 behind
//! `AuthLayer::new(introspection)` (or `jwt.or(introspection)`), called by a real tonic
//! client, against an in-process introspection endpoint (hyper on 127.0.0.1:0) whose
//! answer each test sets and which records every request it gets. Each case asserts the
//! exact gRPC code and message, or the principal the handler saw, and how many requests
//! reached the endpoint.
#![cfg(feature = "jwks")]

#[path = "../examples/support/tokens.rs"]
mod tokens;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use grpc_auth::AuthError;
use grpc_auth::authn::IntrospectionAuthenticator;
use grpc_auth::authn::jwt::{Algorithm, JwtAuthenticator, JwtKey, StaticKeys};
use grpc_auth::oauth::ClientAuth;
use grpc_auth::{AuthLayer, Authenticator, Principal};
use grpc_auth_protos::helloworld::greeter_client::GreeterClient;
use grpc_auth_protos::helloworld::greeter_server::{Greeter, GreeterServer};
use grpc_auth_protos::helloworld::{HelloReply, HelloRequest};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::Channel;

const CLIENT_ID: &str = "greeter";
const CLIENT_SECRET: &str = "introspection-client-secret-Zq8";
const JWT_SECRET: &[u8] = b"introspection-jwt-secret-0123456789abcdef";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

// ---------------------------------------------------------------------------------
// The introspection endpoint
// ---------------------------------------------------------------------------------

/// What the endpoint answers: a status and a body, after a delay, or never.
#[derive(Clone, Debug)]
struct Answer {
    status: u16,
    body: String,
    delay: Duration,
    hang: bool,
}

impl Answer {
    /// A `200` with `body`; an active answer without a `token_type` gets `Bearer`, as
    /// providers mark access tokens (see `an_active_answer_without_token_type_is_refused`).
    fn json(mut body: Value) -> Self {
        if body["active"] == json!(true)
            && let Some(object) = body.as_object_mut()
        {
            object
                .entry("token_type")
                .or_insert_with(|| json!("Bearer"));
        }
        Self::status(200, &body.to_string())
    }

    fn status(status: u16, body: &str) -> Self {
        Self {
            status,
            body: body.to_owned(),
            delay: Duration::ZERO,
            hang: false,
        }
    }

    fn hang() -> Self {
        Self {
            hang: true,
            ..Self::status(200, "{}")
        }
    }

    fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// An active answer for `sub` with two scopes, valid for an hour.
fn active(sub: &str) -> Answer {
    Answer::json(json!({
        "active": true,
        "sub": sub,
        "scope": "greeter.read greeter.write",
        "exp": now() + 3600,
    }))
}

fn inactive() -> Answer {
    Answer::json(json!({"active": false}))
}

/// One request the endpoint got: its `authorization` header and its decoded form.
#[derive(Clone, Debug)]
struct Seen {
    authorization: Option<String>,
    form: Vec<(String, String)>,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn names(&self) -> Vec<&str> {
        self.form.iter().map(|(k, _)| k.as_str()).collect()
    }
}

struct IdpState {
    base: String,
    introspections: AtomicUsize,
    discoveries: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
    answer: Mutex<Answer>,
    per_token: Mutex<HashMap<String, Answer>>,
    /// `None`: the discovery document naming this endpoint as the issuer.
    discovery: Mutex<Option<Answer>>,
}

/// An OAuth 2.0 provider on 127.0.0.1: `POST /introspect` and
/// `GET /.well-known/openid-configuration`.
struct Idp {
    state: Arc<IdpState>,
}

impl Idp {
    /// Answers every token with `answer` until told otherwise.
    async fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(IdpState {
            base,
            introspections: AtomicUsize::new(0),
            discoveries: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            answer: Mutex::new(answer),
            per_token: Mutex::new(HashMap::new()),
            discovery: Mutex::new(None),
        });
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(handle(&st, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { state }
    }

    /// `http://127.0.0.1:{port}`: the issuer.
    fn base(&self) -> String {
        self.state.base.clone()
    }

    /// The introspection endpoint's URL.
    fn url(&self) -> String {
        format!("{}/introspect", self.state.base)
    }

    /// Answers every token without its own answer with `answer` from now on.
    fn answer(&self, answer: Answer) {
        *self.state.answer.lock().unwrap() = answer;
    }

    /// Answers `token` with `answer` from now on.
    fn answer_for(&self, token: &str, answer: Answer) {
        self.state
            .per_token
            .lock()
            .unwrap()
            .insert(token.to_owned(), answer);
    }

    /// Answers discovery with `answer` (`None`: the right document).
    fn discovery(&self, answer: Option<Answer>) {
        *self.state.discovery.lock().unwrap() = answer;
    }

    /// Introspection requests received (counted on arrival).
    fn requests(&self) -> usize {
        self.state.introspections.load(Ordering::SeqCst)
    }

    fn discoveries(&self) -> usize {
        self.state.discoveries.load(Ordering::SeqCst)
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Waits (at most 5 s) until `n` introspection requests have arrived.
    async fn wait_for_requests(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.requests() < n {
            assert!(Instant::now() < deadline, "{n} requests never arrived");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn handle(st: &IdpState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let respond = |a: &Answer| {
        Response::builder()
            .status(a.status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(a.body.clone())))
            .unwrap()
    };
    match (req.method().clone(), req.uri().path()) {
        (Method::GET, "/.well-known/openid-configuration") => {
            st.discoveries.fetch_add(1, Ordering::SeqCst);
            let doc = st.discovery.lock().unwrap().clone().unwrap_or_else(|| {
                Answer::json(json!({
                    "issuer": st.base,
                    "introspection_endpoint": format!("{}/introspect", st.base),
                }))
            });
            respond(&doc)
        }
        (Method::POST, "/introspect") => {
            st.introspections.fetch_add(1, Ordering::SeqCst);
            let authorization = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let form = parse_form(&String::from_utf8_lossy(&body));
            let token = form
                .iter()
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            st.seen.lock().unwrap().push(Seen {
                authorization,
                form,
            });
            let answer = st
                .per_token
                .lock()
                .unwrap()
                .get(&token)
                .cloned()
                .unwrap_or_else(|| st.answer.lock().unwrap().clone());
            if answer.hang {
                std::future::pending::<()>().await;
            }
            if !answer.delay.is_zero() {
                tokio::time::sleep(answer.delay).await;
            }
            respond(&answer)
        }
        _ => respond(&Answer::status(404, "{}")),
    }
}

/// `application/x-www-form-urlencoded` decoding.
fn form_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

fn parse_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------------------------
// The gRPC server and client
// ---------------------------------------------------------------------------------

/// Greets with the principal the auth layer handed it: subject, scheme and scopes.
#[derive(Debug, Clone, Copy)]
struct Echo;

fn who(req: &tonic::Request<HelloRequest>) -> String {
    match req.extensions().get::<Principal>() {
        Some(p) => format!(
            "{} via {} [{}]",
            p.subject(),
            p.scheme(),
            p.scopes().join(" ")
        ),
        None => "anonymous".to_owned(),
    }
}

#[tonic::async_trait]
impl Greeter for Echo {
    async fn say_hello(
        &self,
        req: tonic::Request<HelloRequest>,
    ) -> Result<tonic::Response<HelloReply>, tonic::Status> {
        Ok(tonic::Response::new(HelloReply { message: who(&req) }))
    }

    async fn say_hello_admin(
        &self,
        req: tonic::Request<HelloRequest>,
    ) -> Result<tonic::Response<HelloReply>, tonic::Status> {
        Ok(tonic::Response::new(HelloReply { message: who(&req) }))
    }
}

/// The greeter behind `AuthLayer::new(auth)` on 127.0.0.1:0, and a channel to it.
async fn serve<A: Authenticator>(auth: A) -> Channel {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = tonic::transport::Server::builder()
        .timeout(Duration::from_secs(30))
        .layer(AuthLayer::new(auth))
        .add_service(GreeterServer::new(Echo));
    tokio::spawn(async move {
        router
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

type Reply = Result<String, (Code, String)>;

/// SayHello with `authorization: Bearer <token>`: the greeting, or code and message. A
/// refusal's message never contains the token.
async fn hello(ch: &Channel, token: &str) -> Reply {
    let mut req = tonic::Request::new(HelloRequest { name: "Ada".into() });
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let reply = GreeterClient::new(ch.clone())
        .say_hello(req)
        .await
        .map(|r| r.into_inner().message)
        .map_err(|s| (s.code(), s.message().to_owned()));
    if let Err((_, msg)) = &reply {
        assert!(!msg.contains(token), "the token leaked into {msg:?}");
    }
    reply
}

/// A distinctive opaque token, so a leak into a message cannot go unnoticed.
fn tok(name: &str) -> String {
    format!("opaque-Vq7kZ3-{name}-secretish")
}

fn greeted(sub: &str, scheme: &str, scopes: &str) -> Reply {
    Ok(format!("{sub} via {scheme} [{scopes}]"))
}

fn ada() -> Reply {
    greeted("ada", "introspection", "greeter.read greeter.write")
}

fn unauth(msg: &str) -> Reply {
    Err((Code::Unauthenticated, msg.to_owned()))
}

fn unavailable(msg: &str) -> Reply {
    Err((Code::Unavailable, msg.to_owned()))
}

/// Asserts `UNAVAILABLE` with a message starting with `prefix`.
#[track_caller]
fn assert_unavailable_prefix(reply: &Reply, prefix: &str) {
    match reply {
        Err((Code::Unavailable, msg)) if msg.starts_with(prefix) => {}
        other => panic!("expected UNAVAILABLE {prefix:?}..., got {other:?}"),
    }
}

fn basic_auth() -> ClientAuth {
    ClientAuth::secret_basic(CLIENT_ID, CLIENT_SECRET)
}

/// The greeter behind an introspection authenticator at `idp` (client_secret_basic).
async fn introspecting(idp: &Idp) -> Channel {
    serve(
        IntrospectionAuthenticator::builder(idp.url(), basic_auth())
            .build()
            .unwrap(),
    )
    .await
}

// ---------------------------------------------------------------------------------
// 1, 2: active tokens and the request the endpoint gets
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn an_active_token_is_accepted_and_the_request_uses_client_secret_basic() {
    let idp = Idp::start(active("ada")).await;
    // Characters RFC 6749 2.3.1 has the id and secret form-urlencoded for.
    let (id, secret) = ("greeter:svc", "s3 cr+t/-&=%é");
    let ch = serve(
        IntrospectionAuthenticator::builder(idp.url(), ClientAuth::secret_basic(id, secret))
            .build()
            .unwrap(),
    )
    .await;
    let token = tok("basic");
    assert_eq!(hello(&ch, &token).await, ada());
    let seen = idp.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].form,
        vec![
            ("token".to_owned(), token.clone()),
            ("token_type_hint".to_owned(), "access_token".to_owned()),
        ],
        "the form is the token and its hint, nothing else"
    );
    let authorization = seen[0]
        .authorization
        .clone()
        .expect("an authorization header");
    let encoded = authorization
        .strip_prefix("Basic ")
        .expect("Basic authorization");
    let pair = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
    // The id's own ':' is encoded, so the first ':' separates id and secret.
    let (enc_id, enc_secret) = pair.split_once(':').unwrap();
    assert_eq!(enc_id, "greeter%3Asvc");
    assert!(
        !enc_secret.contains([' ', '+', '/', '&', '=']),
        "{enc_secret}"
    );
    assert_eq!(form_decode(enc_id), id);
    assert_eq!(form_decode(enc_secret), secret);
}

#[tokio::test]
async fn client_secret_post_puts_the_client_credentials_in_the_form() {
    let idp = Idp::start(active("ada")).await;
    let ch = serve(
        IntrospectionAuthenticator::builder(
            idp.url(),
            ClientAuth::secret_post(CLIENT_ID, CLIENT_SECRET),
        )
        .build()
        .unwrap(),
    )
    .await;
    let token = tok("post");
    assert_eq!(hello(&ch, &token).await, ada());
    let seen = idp.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].authorization, None);
    assert_eq!(
        seen[0].names(),
        ["token", "token_type_hint", "client_id", "client_secret"]
    );
    assert_eq!(seen[0].field("token"), Some(token.as_str()));
    assert_eq!(seen[0].field("token_type_hint"), Some("access_token"));
    assert_eq!(seen[0].field("client_id"), Some(CLIENT_ID));
    assert_eq!(seen[0].field("client_secret"), Some(CLIENT_SECRET));
}

#[tokio::test]
async fn private_key_jwt_sends_a_signed_assertion_for_the_endpoint() {
    let idp = Idp::start(active("ada")).await;
    let auth = ClientAuth::private_key_jwt(
        CLIENT_ID,
        Algorithm::RS256,
        include_bytes!("keys/rsa_private.pem"),
    )
    .unwrap();
    let ch = serve(
        IntrospectionAuthenticator::builder(idp.url(), auth)
            .build()
            .unwrap(),
    )
    .await;
    let token = tok("pkjwt");
    assert_eq!(hello(&ch, &token).await, ada());
    let seen = idp.seen();
    assert_eq!(seen.len(), 1);
    let seen = &seen[0];
    assert_eq!(seen.authorization, None, "no secret travels");
    assert_eq!(seen.field("token"), Some(token.as_str()));
    assert_eq!(seen.field("token_type_hint"), Some("access_token"));
    assert_eq!(seen.field("client_assertion_type"), Some(JWT_BEARER));
    assert_eq!(seen.field("client_secret"), None);
    let assertion = seen.field("client_assertion").expect("a client assertion");

    tokens::install_jwt_provider();
    let key =
        jsonwebtoken::DecodingKey::from_rsa_pem(include_bytes!("keys/rsa_public.pem")).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[idp.url()]);
    validation.set_issuer(&[CLIENT_ID]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Value>(assertion, &key, &validation)
        .expect("the assertion verifies with the client's public key");
    assert_eq!(data.header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(data.claims["aud"], json!(idp.url()));
    assert_eq!(data.claims["iss"], json!(CLIENT_ID));
    assert_eq!(data.claims["sub"], json!(CLIENT_ID));
    assert!(data.claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    // Signed by another key: refused.
    let other =
        jsonwebtoken::DecodingKey::from_rsa_pem(include_bytes!("keys/rsa2_public.pem")).unwrap();
    assert!(jsonwebtoken::decode::<Value>(assertion, &other, &validation).is_err());
}

#[tokio::test]
async fn an_active_answer_without_sub_names_its_client() {
    let idp = Idp::start(Answer::json(json!({
        "active": true,
        "client_id": "billing",
        "scope": "greeter.read",
    })))
    .await;
    let ch = introspecting(&idp).await;
    assert_eq!(
        hello(&ch, &tok("cc")).await,
        greeted("billing", "introspection", "greeter.read")
    );
    // With both, the subject wins.
    idp.answer(Answer::json(json!({
        "active": true,
        "sub": "ada",
        "client_id": "billing",
    })));
    assert_eq!(
        hello(&ch, &tok("both")).await,
        greeted("ada", "introspection", "")
    );
}

// ---------------------------------------------------------------------------------
// 3, 4: caching
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn an_inactive_token_is_refused_and_remembered_for_the_negative_ttl() {
    let idp = Idp::start(inactive()).await;
    let ch = serve(
        IntrospectionAuthenticator::builder(idp.url(), basic_auth())
            .negative_cache_ttl(Duration::from_millis(300))
            .build()
            .unwrap(),
    )
    .await;
    let token = tok("garbage");
    assert_eq!(hello(&ch, &token).await, unauth("inactive token"));
    assert_eq!(idp.requests(), 1);
    assert_eq!(hello(&ch, &token).await, unauth("inactive token"));
    assert_eq!(idp.requests(), 1, "within the negative TTL: no new request");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(hello(&ch, &token).await, unauth("inactive token"));
    assert_eq!(idp.requests(), 2, "past the negative TTL: asked again");
    // Another token is its own question.
    assert_eq!(hello(&ch, &tok("other")).await, unauth("inactive token"));
    assert_eq!(idp.requests(), 3);
}

#[tokio::test]
async fn an_active_answer_serves_repeated_calls() {
    let idp = Idp::start(active("ada")).await;
    let ch = introspecting(&idp).await;
    let token = tok("cached");
    assert_eq!(hello(&ch, &token).await, ada());
    assert_eq!(hello(&ch, &token).await, ada());
    assert_eq!(hello(&ch, &token).await, ada());
    assert_eq!(idp.requests(), 1, "one request for three calls");
}

#[tokio::test]
async fn a_revocation_is_picked_up_once_the_cache_ttl_passes() {
    let idp = Idp::start(active("ada")).await;
    let ch = serve(
        IntrospectionAuthenticator::builder(idp.url(), basic_auth())
            .cache_ttl(Duration::from_secs(1))
            .build()
            .unwrap(),
    )
    .await;
    let token = tok("revoked-later");
    assert_eq!(hello(&ch, &token).await, ada());
    assert_eq!(idp.requests(), 1);
    // Revoked at the provider.
    idp.answer(inactive());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(hello(&ch, &token).await, unauth("inactive token"));
    assert_eq!(
        idp.requests(),
        2,
        "past the TTL the endpoint is asked again"
    );
}

#[tokio::test]
async fn a_cached_answer_is_not_served_past_the_tokens_exp() {
    let exp = now() + 2;
    let idp = Idp::start(Answer::json(json!({
        "active": true,
        "sub": "ada",
        "exp": exp,
    })))
    .await;
    // The default TTL (30 s) is longer than the token's life.
    let ch = introspecting(&idp).await;
    let token = tok("short-lived");
    assert_eq!(
        hello(&ch, &token).await,
        greeted("ada", "introspection", "")
    );
    assert_eq!(
        hello(&ch, &token).await,
        greeted("ada", "introspection", "")
    );
    assert_eq!(idp.requests(), 1);
    // Past exp (the endpoint would still say active, with the same exp).
    let until = UNIX_EPOCH + Duration::from_secs(exp) + Duration::from_millis(100);
    if let Ok(wait) = until.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait).await;
    }
    assert_eq!(hello(&ch, &token).await, unauth("token expired"));
    assert_eq!(idp.requests(), 2, "the cache did not serve it past exp");
}

// ---------------------------------------------------------------------------------
// 5: one request per token in flight
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_with_one_token_make_one_request() {
    let idp = Idp::start(active("ada").delayed(Duration::from_millis(200))).await;
    let ch = introspecting(&idp).await;

    let token = tok("thundering-herd");
    let calls: Vec<_> = (0..64)
        .map(|_| {
            let (ch, token) = (ch.clone(), token.clone());
            tokio::spawn(async move { hello(&ch, &token).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), ada());
    }
    assert_eq!(idp.requests(), 1, "64 concurrent calls, one request");

    let calls: Vec<_> = (0..64)
        .map(|i| {
            let ch = ch.clone();
            tokio::spawn(async move { hello(&ch, &tok(&format!("distinct-{i}"))).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), ada());
    }
    assert_eq!(idp.requests(), 65, "64 distinct tokens, 64 more requests");
}

// ---------------------------------------------------------------------------------
// 6: the endpoint failing
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn endpoint_failures_are_unavailable_or_refusals() {
    let idp = Idp::start(active("ada")).await;
    let ch = serve(
        IntrospectionAuthenticator::builder(idp.url(), basic_auth())
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap(),
    )
    .await;

    idp.answer(Answer::status(500, "{}"));
    let reply = hello(&ch, &tok("e500")).await;
    assert_unavailable_prefix(&reply, "token introspection unavailable");
    assert_eq!(
        reply,
        unavailable("token introspection unavailable: answered HTTP 500")
    );

    idp.answer(Answer::status(200, "<html>not json</html>"));
    assert_eq!(
        hello(&ch, &tok("garbage-body")).await,
        unavailable("token introspection unavailable: answered something other than a JSON object")
    );

    idp.answer(Answer::json(json!({"sub": "ada", "scope": "greeter.read"})));
    assert_eq!(
        hello(&ch, &tok("no-active")).await,
        unavailable("token introspection unavailable: answered no \"active\" member")
    );
    idp.answer(Answer::json(json!({"active": "true", "sub": "ada"})));
    assert_eq!(
        hello(&ch, &tok("string-active")).await,
        unavailable("token introspection unavailable: answered no \"active\" member"),
        "\"active\" must be a JSON boolean"
    );

    // Our own client authentication refused: a misconfiguration, never cached.
    idp.answer(Answer::status(401, r#"{"error":"invalid_client"}"#));
    let token = tok("invalid-client");
    let before = idp.requests();
    for _ in 0..2 {
        assert_eq!(
            hello(&ch, &token).await,
            unavailable("token introspection refused this server's request (invalid_client)")
        );
    }
    assert_eq!(idp.requests(), before + 2, "not cached: asked each time");

    // An error code the endpoint makes up (here echoing the token) is not shown.
    let token = tok("echoed");
    idp.answer(Answer::status(
        400,
        &json!({"error": token, "error_description": token}).to_string(),
    ));
    assert_eq!(
        hello(&ch, &token).await,
        unavailable("token introspection refused this server's request (HTTP 400)")
    );

    // The endpoint will not introspect this kind of token: a verdict on the token.
    idp.answer(Answer::status(400, r#"{"error":"unsupported_token_type"}"#));
    assert_eq!(
        hello(&ch, &tok("unsupported")).await,
        unauth("token refused by the introspection endpoint")
    );

    // Hanging past the timeout (300 ms).
    idp.answer(Answer::hang());
    let started = Instant::now();
    let reply = hello(&ch, &tok("hang")).await;
    assert_unavailable_prefix(&reply, "token introspection unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "returned after {:?}",
        started.elapsed()
    );
    // Not cached either: asked again.
    let before = idp.requests();
    idp.answer(active("ada"));
    assert_eq!(hello(&ch, &tok("hang")).await, ada());
    assert_eq!(idp.requests(), before + 1);
}

#[tokio::test]
async fn an_endpoint_with_nothing_listening_is_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let ch = serve(
        IntrospectionAuthenticator::builder(format!("http://{addr}/introspect"), basic_auth())
            .build()
            .unwrap(),
    )
    .await;
    let reply = hello(&ch, &tok("closed")).await;
    assert_unavailable_prefix(&reply, "token introspection unavailable");
}

#[tokio::test]
async fn cached_answers_keep_serving_while_the_provider_is_down() {
    let idp = Idp::start(active("ada")).await;
    let ch = introspecting(&idp).await;
    let known = tok("known");
    assert_eq!(hello(&ch, &known).await, ada());
    assert_eq!(idp.requests(), 1);

    idp.answer(Answer::status(500, "{}"));
    assert_eq!(hello(&ch, &known).await, ada(), "cached through the outage");
    assert_eq!(idp.requests(), 1);
    assert_eq!(
        hello(&ch, &tok("new-during-outage")).await,
        unavailable("token introspection unavailable: answered HTTP 500")
    );
    assert_eq!(idp.requests(), 2);

    // Recovered: the token refused during the outage was not remembered as inactive.
    idp.answer(active("grace"));
    assert_eq!(
        hello(&ch, &tok("new-during-outage")).await,
        greeted("grace", "introspection", "greeter.read greeter.write")
    );
    assert_eq!(hello(&ch, &known).await, ada());
    assert_eq!(idp.requests(), 3);
}

// ---------------------------------------------------------------------------------
// 7: the checks on active answers
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn active_answers_are_checked() {
    let idp = Idp::start(active("ada")).await;
    let ch = introspecting(&idp).await;
    let cases: [(&str, Value, Reply); 7] = [
        (
            "expired",
            json!({"active": true, "sub": "ada", "exp": now() - 60}),
            unauth("token expired"),
        ),
        (
            "early",
            json!({"active": true, "sub": "ada", "nbf": now() + 600, "exp": now() + 3600}),
            unauth("token not yet valid"),
        ),
        (
            "refresh",
            json!({"active": true, "sub": "ada", "token_type": "refresh_token"}),
            unauth("token is not a bearer access token"),
        ),
        (
            "bearer",
            json!({"active": true, "sub": "ada", "token_type": "Bearer"}),
            greeted("ada", "introspection", ""),
        ),
        (
            "nobody",
            json!({"active": true, "scope": "greeter.read"}),
            unauth("active token names neither a subject nor a client"),
        ),
        (
            "empty-sub",
            json!({"active": true, "sub": "", "client_id": ""}),
            unauth("token has an invalid sub"),
        ),
        (
            "bound",
            json!({
                "active": true,
                "sub": "ada",
                "cnf": {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"},
            }),
            unauth("certificate-bound token presented without a client certificate"),
        ),
    ];
    for (name, answer, want) in cases {
        let token = tok(name);
        idp.answer_for(&token, Answer::json(answer));
        assert_eq!(hello(&ch, &token).await, want, "{name}");
    }
}

#[tokio::test]
async fn the_issuer_is_checked_when_configured() {
    let idp = Idp::start(active("ada")).await;
    let ch = serve(
        IntrospectionAuthenticator::builder(idp.url(), basic_auth())
            .issuer("https://idp")
            .build()
            .unwrap(),
    )
    .await;
    let cases: [(&str, Value, Reply); 4] = [
        (
            "other-iss",
            json!({"active": true, "sub": "ada", "iss": "https://other"}),
            unauth("token from another issuer"),
        ),
        (
            "number-iss",
            json!({"active": true, "sub": "ada", "iss": 7}),
            unauth("token from another issuer"),
        ),
        (
            "same-iss",
            json!({"active": true, "sub": "ada", "iss": "https://idp"}),
            greeted("ada", "introspection", ""),
        ),
        (
            "no-iss",
            json!({"active": true, "sub": "ada"}),
            greeted("ada", "introspection", ""),
        ),
    ];
    for (name, answer, want) in cases {
        let token = tok(name);
        idp.answer_for(&token, Answer::json(answer));
        assert_eq!(hello(&ch, &token).await, want, "{name}");
    }
}

#[tokio::test]
async fn the_audience_is_checked_when_configured() {
    let idp = Idp::start(active("ada")).await;
    let ch = serve(
        IntrospectionAuthenticator::builder(idp.url(), basic_auth())
            .audience("greeter")
            .build()
            .unwrap(),
    )
    .await;
    let cases: [(&str, Value, Reply); 5] = [
        (
            "other-aud",
            json!({"active": true, "sub": "ada", "aud": "other"}),
            unauth("token not issued for this service"),
        ),
        (
            "list-aud",
            json!({"active": true, "sub": "ada", "aud": ["x", "greeter"]}),
            greeted("ada", "introspection", ""),
        ),
        (
            "string-aud",
            json!({"active": true, "sub": "ada", "aud": "greeter"}),
            greeted("ada", "introspection", ""),
        ),
        (
            "list-without",
            json!({"active": true, "sub": "ada", "aud": ["x", "y"]}),
            unauth("token not issued for this service"),
        ),
        (
            "no-aud",
            json!({"active": true, "sub": "ada"}),
            unauth("token not issued for this service"),
        ),
    ];
    for (name, answer, want) in cases {
        let token = tok(name);
        idp.answer_for(&token, Answer::json(answer));
        assert_eq!(hello(&ch, &token).await, want, "{name}");
    }
}

// ---------------------------------------------------------------------------------
// 8: composition and the in-flight bound
// ---------------------------------------------------------------------------------

fn jwt() -> JwtAuthenticator {
    JwtAuthenticator::new(
        StaticKeys::new().with(JwtKey::secret(Algorithm::HS256, JWT_SECRET).unwrap()),
    )
}

fn hs256(claims: &Value) -> String {
    tokens::hs256(std::str::from_utf8(JWT_SECRET).unwrap(), claims)
}

#[tokio::test]
async fn jwt_or_introspection_verifies_jwts_locally_and_introspects_the_rest() {
    let idp = Idp::start(active("grace")).await;
    let introspection = IntrospectionAuthenticator::builder(idp.url(), basic_auth())
        .build()
        .unwrap();
    let ch = serve(jwt().or(introspection)).await;

    let good = hs256(&tokens::claims(
        "ada",
        "https://issuer.test",
        "greeter",
        json!({"scope": "greeter.read"}),
    ));
    assert_eq!(
        hello(&ch, &good).await,
        greeted("ada", "jwt", "greeter.read")
    );
    assert_eq!(idp.requests(), 0, "a JWT is verified locally");

    // JWT-shaped, signed with another secret: the JWT scheme's refusal stands.
    let forged = tokens::hs256(
        "another-secret-0123456789abcdef0123",
        &tokens::claims("ada", "https://issuer.test", "greeter", json!({})),
    );
    assert_eq!(hello(&ch, &forged).await, unauth("invalid token signature"));
    assert_eq!(idp.requests(), 0, "a bad JWT is not sent to the provider");

    // Opaque: the introspection endpoint decides.
    assert_eq!(
        hello(&ch, &tok("composed")).await,
        greeted("grace", "introspection", "greeter.read greeter.write")
    );
    assert_eq!(idp.requests(), 1);
    let dead = tok("composed-inactive");
    idp.answer_for(&dead, inactive());
    assert_eq!(hello(&ch, &dead).await, unauth("inactive token"));
    assert_eq!(idp.requests(), 2);

    // The JWT scheme alone refuses an opaque token.
    let jwt_only = serve(jwt()).await;
    assert_eq!(
        hello(&jwt_only, &tok("jwt-only")).await,
        unauth("malformed token")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn too_many_tokens_in_flight_are_unavailable_at_once() {
    let idp = Idp::start(active("ada")).await;
    let ch = serve(
        IntrospectionAuthenticator::builder(idp.url(), basic_auth())
            .max_in_flight(1)
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap(),
    )
    .await;
    let slow = tok("slow");
    idp.answer_for(&slow, Answer::hang());
    let pending = {
        let (ch, slow) = (ch.clone(), slow.clone());
        tokio::spawn(async move { hello(&ch, &slow).await })
    };
    idp.wait_for_requests(1).await;

    let other = tok("other");
    assert_eq!(
        hello(&ch, &other).await,
        unavailable("too many token introspections in progress")
    );
    assert_eq!(idp.requests(), 1, "refused before any request");

    // The slow one times out, and its slot is free again.
    let reply = pending.await.unwrap();
    assert_unavailable_prefix(&reply, "token introspection unavailable");
    assert_eq!(hello(&ch, &other).await, ada());
    assert_eq!(idp.requests(), 2);
}

// ---------------------------------------------------------------------------------
// 9: no secret or token in Debug
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn debug_shows_neither_the_client_secret_nor_any_token() {
    let idp = Idp::start(active("ada")).await;
    for auth in [
        basic_auth(),
        ClientAuth::secret_post(CLIENT_ID, CLIENT_SECRET),
    ] {
        let builder = IntrospectionAuthenticator::builder(idp.url(), auth)
            .issuer("https://idp")
            .audience("greeter");
        let shown = format!("{builder:?}");
        assert!(!shown.contains(CLIENT_SECRET), "{shown}");

        let introspection = builder.build().unwrap();
        // The server shares the authenticator's cache (a clone).
        let ch = serve(introspection.clone()).await;
        let (good, bad) = (tok("debug-good"), tok("debug-bad"));
        idp.answer_for(
            &good,
            Answer::json(
                json!({"active": true, "sub": "ada", "iss": "https://idp", "aud": "greeter"}),
            ),
        );
        idp.answer_for(&bad, inactive());
        assert_eq!(hello(&ch, &good).await, greeted("ada", "introspection", ""));
        assert_eq!(hello(&ch, &bad).await, unauth("inactive token"));

        let shown = format!("{introspection:?}");
        assert!(shown.contains("IntrospectionAuthenticator"), "{shown}");
        assert!(shown.contains(CLIENT_ID), "{shown}");
        assert!(!shown.contains(CLIENT_SECRET), "the secret in {shown}");
        assert!(!shown.contains("Vq7kZ3"), "a token in {shown}");
        let shown = format!("{introspection:#?}");
        assert!(!shown.contains(CLIENT_SECRET), "the secret in {shown}");
        assert!(!shown.contains("Vq7kZ3"), "a token in {shown}");
    }
}

// ---------------------------------------------------------------------------------
// 10: the endpoint from the issuer's discovery document
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn the_endpoint_is_discovered_from_the_issuer() {
    let idp = Idp::start(active("ada")).await;
    let ch = serve(
        IntrospectionAuthenticator::builder_for_issuer(idp.base(), basic_auth())
            .build()
            .unwrap(),
    )
    .await;
    assert_eq!(hello(&ch, &tok("discovered")).await, ada());
    assert_eq!(hello(&ch, &tok("discovered-2")).await, ada());
    assert_eq!((idp.discoveries(), idp.requests()), (1, 2));
    assert!(idp.seen()[0].authorization.is_some());

    // The issuer is checked: an answer naming another is refused, one naming it not.
    let other = tok("other-issuer");
    idp.answer_for(
        &other,
        Answer::json(json!({"active": true, "sub": "ada", "iss": "https://elsewhere"})),
    );
    assert_eq!(
        hello(&ch, &other).await,
        unauth("token from another issuer")
    );
    let same = tok("same-issuer");
    idp.answer_for(
        &same,
        Answer::json(json!({"active": true, "sub": "ada", "iss": idp.base()})),
    );
    assert_eq!(hello(&ch, &same).await, greeted("ada", "introspection", ""));
}

#[tokio::test]
async fn a_discovery_document_of_another_issuer_is_unavailable() {
    let idp = Idp::start(active("ada")).await;
    idp.discovery(Some(Answer::json(json!({
        "issuer": "https://elsewhere.example",
        "introspection_endpoint": idp.url(),
    }))));
    let ch = serve(
        IntrospectionAuthenticator::builder_for_issuer(idp.base(), basic_auth())
            .build()
            .unwrap(),
    )
    .await;
    let reply = hello(&ch, &tok("mismatch")).await;
    assert_unavailable_prefix(&reply, "token introspection unavailable");
    assert_eq!(
        idp.requests(),
        0,
        "nothing sent to an endpoint it was not told of"
    );
}

#[tokio::test]
async fn a_failed_discovery_is_tried_again_on_the_next_call() {
    let idp = Idp::start(active("ada")).await;
    idp.discovery(Some(Answer::status(500, "{}")));
    let ch = serve(
        IntrospectionAuthenticator::builder_for_issuer(idp.base(), basic_auth())
            .build()
            .unwrap(),
    )
    .await;
    let token = tok("discovery-retry");
    let reply = hello(&ch, &token).await;
    assert_unavailable_prefix(&reply, "token introspection unavailable");
    assert_eq!((idp.discoveries(), idp.requests()), (1, 0));

    idp.discovery(None);
    assert_eq!(hello(&ch, &token).await, ada());
    assert_eq!((idp.discoveries(), idp.requests()), (2, 1));
}

/// A refresh token is active too, and some providers (oidc-provider) mark it only by
/// leaving out `token_type`: such an answer is refused unless the authenticator was
/// told its provider never sends one.
#[tokio::test]
async fn an_active_answer_without_token_type_is_refused() {
    let idp = Idp::start(Answer::status(
        200,
        r#"{"active":true,"sub":"ada","scope":"greeter.read"}"#,
    ))
    .await;
    let strict =
        IntrospectionAuthenticator::builder(idp.url(), ClientAuth::secret_basic("rs", "rs-secret"))
            .build()
            .unwrap();
    assert_eq!(
        strict
            .introspect(&tok("refresh"))
            .await
            .map(|p| p.subject().to_owned()),
        Err(AuthError::unauthenticated(
            "token is not a bearer access token"
        ))
    );
    let lax =
        IntrospectionAuthenticator::builder(idp.url(), ClientAuth::secret_basic("rs", "rs-secret"))
            .allow_missing_token_type()
            .build()
            .unwrap();
    assert_eq!(
        lax.introspect(&tok("refresh"))
            .await
            .map(|p| p.subject().to_owned()),
        Ok("ada".to_owned())
    );
    // `token_use` (Ory Hydra) other than an access token's is refused either way.
    idp.answer(Answer::json(
        json!({"active": true, "sub": "ada", "token_use": "refresh_token"}),
    ));
    assert_eq!(
        lax.introspect(&tok("hydra-refresh"))
            .await
            .map(|p| p.subject().to_owned()),
        Err(AuthError::unauthenticated(
            "token is not a bearer access token"
        ))
    );
}
