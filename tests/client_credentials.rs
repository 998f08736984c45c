//! The OAuth 2.0 client-credentials grant (`ClientCredentials`) against an in-process
//! token endpoint on 127.0.0.1: the request it sends, and how each answer maps.
#![cfg(feature = "jwks")]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use grpc_auth::credentials::{ClientCredentials, TokenError, TokenSource};
use grpc_auth::oauth::ClientAuth;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What the endpoint saw, and what it answers.
#[derive(Default)]
struct Endpoint {
    seen: Mutex<Vec<(Option<String>, String)>>,
    answer: Mutex<(u16, String)>,
}

async fn endpoint(status: u16, body: &str) -> (String, Arc<Endpoint>) {
    let state = Arc::new(Endpoint::default());
    *state.answer.lock().unwrap() = (status, body.to_owned());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
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
                    async move {
                        let auth = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        st.seen
                            .lock()
                            .unwrap()
                            .push((auth, String::from_utf8_lossy(&body).into_owned()));
                        let (status, body) = st.answer.lock().unwrap().clone();
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, state)
}

#[tokio::test]
async fn a_token_is_fetched_with_client_secret_basic_scope_and_resource() {
    let (url, ep) = endpoint(
        200,
        r#"{"access_token":"at-1","token_type":"Bearer","expires_in":300}"#,
    )
    .await;
    let source = ClientCredentials::builder(&url, ClientAuth::secret_basic("bill:ing", "s3 cret"))
        .scope("greeter.read greeter.write")
        .resource("https://greeter.example")
        .build()
        .unwrap();
    let token = source.fetch().await.unwrap();
    assert_eq!(token.value().expose(), b"at-1");
    let left = token
        .expires_at()
        .unwrap()
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs();
    assert!((298..=300).contains(&left), "{left}");
    let seen = ep.seen.lock().unwrap().clone();
    let (auth, body) = &seen[0];
    // RFC 6749 2.3.1: "bill%3Aing:s3%20cret" in base64.
    assert_eq!(auth.as_deref(), Some("Basic YmlsbCUzQWluZzpzMyUyMGNyZXQ="));
    assert_eq!(
        body,
        "grant_type=client_credentials&scope=greeter.read+greeter.write&resource=https%3A%2F%2Fgreeter.example"
    );
    assert!(!body.contains("s3"), "the secret is not in the form");
}

#[tokio::test]
async fn client_secret_post_puts_the_credentials_in_the_form() {
    let (url, ep) = endpoint(200, r#"{"access_token":"at-2","token_type":"bearer"}"#).await;
    let source = ClientCredentials::builder(&url, ClientAuth::secret_post("billing", "s3cret"))
        .audience("greeter")
        .build()
        .unwrap();
    let token = source.fetch().await.unwrap();
    assert_eq!(token.value().expose(), b"at-2");
    assert_eq!(token.expires_at(), None, "no expires_in: until replaced");
    let seen = ep.seen.lock().unwrap().clone();
    assert_eq!(seen[0].0, None);
    assert_eq!(
        seen[0].1,
        "grant_type=client_credentials&audience=greeter&client_id=billing&client_secret=s3cret"
    );
}

#[tokio::test]
async fn answers_map_to_refused_or_unavailable_without_secrets() {
    let cases: [(u16, &str, bool, &str); 6] = [
        (
            401,
            r#"{"error":"invalid_client","error_description":"bad secret s3cret"}"#,
            true,
            "refused: invalid_client",
        ),
        (
            400,
            r#"{"error":"invalid_scope"}"#,
            true,
            "refused: invalid_scope",
        ),
        (400, "not json", true, "refused: HTTP 400"),
        (503, "{}", false, "answered HTTP 503"),
        (200, "not json", false, "answered no token"),
        (
            200,
            r#"{"access_token":"x","token_type":"DPoP"}"#,
            true,
            "not a bearer token",
        ),
    ];
    for (status, body, refused, want) in cases {
        let (url, _) = endpoint(status, body).await;
        let source =
            ClientCredentials::builder(&url, ClientAuth::secret_basic("billing", "s3cret"))
                .build()
                .unwrap();
        let e = source.fetch().await.unwrap_err();
        assert_eq!(
            matches!(e, TokenError::Refused(_)),
            refused,
            "{status} {body}: {e}"
        );
        assert!(e.to_string().contains(want), "{status} {body}: {e}");
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
    // Nothing listening: unavailable.
    let e = ClientCredentials::builder(
        "http://127.0.0.1:1/token",
        ClientAuth::secret_basic("billing", "s3cret"),
    )
    .build()
    .unwrap()
    .fetch()
    .await
    .unwrap_err();
    assert!(matches!(e, TokenError::Unavailable(_)), "{e}");
    // A plain-http endpoint off loopback is refused at build.
    assert!(
        ClientCredentials::builder(
            "http://idp.example/token",
            ClientAuth::secret_basic("billing", "s3cret")
        )
        .build()
        .is_err()
    );
}

/// A subject token source handing out a fixed token, or failing.
struct Subject(Result<&'static str, ()>);

impl TokenSource for Subject {
    async fn fetch(&self) -> Result<grpc_auth::credentials::Token, TokenError> {
        match self.0 {
            Ok(t) => Ok(grpc_auth::credentials::Token::new(t, None)),
            Err(()) => Err(TokenError::Unavailable("subject file missing".into())),
        }
    }
}

#[tokio::test]
async fn token_exchange_sends_the_subject_token_and_takes_an_n_a_token() {
    use grpc_auth::credentials::TokenExchangeSource;
    let (url, ep) = endpoint(
        200,
        r#"{"access_token":"exchanged","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"N_A","expires_in":60}"#,
    )
    .await;
    let sts = TokenExchangeSource::builder(&url, Subject(Ok("subject.jwt.token")))
        .audience("greeter")
        .scope("greeter.read")
        .client(ClientAuth::secret_post("sts-client", "s3cret"))
        .build()
        .unwrap();
    let token = sts.fetch().await.unwrap();
    assert_eq!(token.value().expose(), b"exchanged");
    assert!(token.expires_at().is_some());
    let seen = ep.seen.lock().unwrap().clone();
    assert_eq!(seen[0].0, None);
    assert_eq!(
        seen[0].1,
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange\
         &subject_token=subject.jwt.token\
         &subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt\
         &audience=greeter&scope=greeter.read&client_id=sts-client&client_secret=s3cret"
    );

    // The subject's failure passes through; the STS's refusal is a refusal.
    let failing = TokenExchangeSource::builder(&url, Subject(Err(())))
        .build()
        .unwrap();
    let e = failing.fetch().await.unwrap_err();
    assert!(matches!(e, TokenError::Unavailable(_)), "{e}");
    assert_eq!(
        ep.seen.lock().unwrap().len(),
        1,
        "nothing sent without a subject"
    );
    let (url, _) = endpoint(400, r#"{"error":"invalid_target"}"#).await;
    let e = TokenExchangeSource::builder(&url, Subject(Ok("t")))
        .build()
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert!(matches!(e, TokenError::Refused(_)), "{e}");
    assert!(e.to_string().ends_with("refused: invalid_target"), "{e}");
}
