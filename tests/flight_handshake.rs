//! Arrow Flight's Basic-to-Bearer exchange against grpc-auth's `TokenExchange`, over
//! TLS: the Rust arrow-flight SQL client's `handshake` (reads the bearer from the
//! initial response headers only), this crate's `BasicLogin` on the Handshake method,
//! and the exact refusals.

#[path = "support/flight.rs"]
mod flight;
#[path = "../examples/support/tls.rs"]
mod tls;

use std::sync::atomic::Ordering;

use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::{Action, HandshakeRequest};
use grpc_auth::credentials::{BasicCredentials, BasicLogin, CredentialsLayer};
use tonic::Code;
use tonic::codegen::tokio_stream;
use tonic::transport::Channel;

use flight::HANDSHAKE;

struct Setup {
    server: flight::FlightServer,
    channel: Channel,
}

async fn setup() -> Setup {
    let pki = tls::test_pki();
    let server = flight::spawn(&pki.cert_pem, &pki.key_pem).await;
    let channel = tls::channel(server.addr.port(), &pki.ca_pem).await;
    Setup { server, channel }
}

fn whoami() -> Action {
    Action::new("whoami", "")
}

/// The first (only) result body of a DoAction, or the status.
async fn action<T>(
    client: &mut FlightServiceClient<T>,
    req: tonic::Request<Action>,
) -> Result<String, (Code, String)>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let status = |s: tonic::Status| (s.code(), s.message().to_owned());
    let mut stream = client.do_action(req).await.map_err(status)?.into_inner();
    let first = stream.message().await.map_err(status)?.expect("one result");
    Ok(String::from_utf8(first.body.to_vec()).expect("utf-8"))
}

#[tokio::test]
async fn arrow_flight_sql_client_handshake_then_calls_with_the_bearer() {
    let s = setup().await;
    let mut client = FlightSqlServiceClient::new(s.channel.clone());
    let payload = client
        .handshake("grace", "hopper")
        .await
        .expect("handshake");
    assert!(payload.is_empty());
    let token = client
        .token()
        .cloned()
        .expect("the bearer, from the initial headers");
    assert_eq!(token.split('.').count(), 3, "a JWT");
    let mut results = client.do_action(whoami()).await.expect("do_action");
    let first = results
        .message()
        .await
        .expect("result")
        .expect("one result");
    assert_eq!(&first.body[..], b"whoami: grace via token");
    assert_eq!(s.server.logins.load(Ordering::SeqCst), 1);

    // The token works on any connection: it is stateless, not tied to the channel.
    let mut raw = FlightServiceClient::new(s.channel.clone());
    let mut req = tonic::Request::new(whoami());
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    assert_eq!(
        action(&mut raw, req).await,
        Ok("whoami: grace via token".into())
    );

    let mut wrong = FlightSqlServiceClient::new(s.channel.clone());
    let err = wrong
        .handshake("grace", "wrong")
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "Arrow error: Ipc error: Can't handshake code: 'The request does not have valid \
         authentication credentials', message: \"invalid username or password\""
    );
    assert!(wrong.token().is_none());
    assert_eq!(s.server.logins.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn refusals_are_exact() {
    let s = setup().await;
    let mut raw = FlightServiceClient::new(s.channel.clone());
    let basic = |user_pass: &str| {
        use base64::Engine as _;
        let v = base64::engine::general_purpose::STANDARD.encode(user_pass);
        format!("Basic {v}").parse().unwrap()
    };
    // Wrong password on Handshake.
    let mut req = tonic::Request::new(tokio_stream::empty::<HandshakeRequest>());
    req.metadata_mut()
        .insert("authorization", basic("grace:wrong"));
    let err = raw.handshake(req).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::Unauthenticated, "invalid username or password")
    );
    // Basic is a login only on Handshake.
    let mut req = tonic::Request::new(whoami());
    req.metadata_mut()
        .insert("authorization", basic("grace:hopper"));
    assert_eq!(
        action(&mut raw, req).await,
        Err((
            Code::Unauthenticated,
            "unsupported authorization scheme".into()
        ))
    );
    assert_eq!(
        action(&mut raw, tonic::Request::new(whoami())).await,
        Err((
            Code::Unauthenticated,
            "missing authorization metadata".into()
        ))
    );
    let mut req = tonic::Request::new(whoami());
    req.metadata_mut()
        .insert("authorization", "Bearer not.a.token".parse().unwrap());
    assert_eq!(
        action(&mut raw, req).await,
        Err((
            Code::Unauthenticated,
            "unsupported authorization scheme".into()
        )),
        "a bearer that is not ours is not ours to judge"
    );
    // The Handshake login, and the Basic sent on DoAction: judged (a wrong password
    // must never ride along another credential), then refused as not a login here.
    assert_eq!(s.server.logins.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn basic_login_credential_logs_in_through_the_handshake() {
    let s = setup().await;
    let target: http::Uri = format!("https://127.0.0.1:{}", s.server.addr.port())
        .parse()
        .unwrap();
    let creds = BasicLogin::new("grace", "hopper").login_method(HANDSHAKE);
    let svc = tower::ServiceBuilder::new()
        .layer(CredentialsLayer::new(creds.clone(), target.clone()))
        .service(s.channel.clone());
    let mut client = FlightServiceClient::new(svc);
    assert_eq!(
        action(&mut client, tonic::Request::new(whoami())).await,
        Err((
            Code::Unauthenticated,
            format!("not logged in: call {HANDSHAKE} first")
        ))
    );
    let res = client
        .handshake(tokio_stream::empty::<HandshakeRequest>())
        .await
        .expect("handshake");
    let bearer = res
        .metadata()
        .get("authorization")
        .expect("bearer")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(bearer.starts_with("Bearer ey"), "{bearer}");
    let mut answers = res.into_inner();
    assert!(answers.message().await.expect("stream").is_none());
    assert!(creds.has_token());
    for _ in 0..3 {
        assert_eq!(
            action(&mut client, tonic::Request::new(whoami())).await,
            Ok("whoami: grace via token".into())
        );
    }
    assert_eq!(s.server.logins.load(Ordering::SeqCst), 1);

    // Plain Basic credentials on Handshake work too (the server side does not care who
    // the client is), and the answer carries a fresh bearer.
    let svc = tower::ServiceBuilder::new()
        .layer(CredentialsLayer::new(
            BasicCredentials::new("grace", "hopper"),
            target,
        ))
        .service(s.channel.clone());
    let res = FlightServiceClient::new(svc)
        .handshake(tokio_stream::empty::<HandshakeRequest>())
        .await
        .expect("handshake");
    assert!(res.metadata().get("authorization").is_some());
    assert_eq!(s.server.logins.load(Ordering::SeqCst), 2);
}
