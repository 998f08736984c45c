//! A token file (gRFC A97) end to end: `TokenSourceCredentials` over `FileTokenSource`,
//! calling the greeter over TLS; the file rotated under a running client.

#[path = "../examples/support/greeter.rs"]
mod greeter;
#[path = "../examples/support/tls.rs"]
mod tls;
#[path = "../examples/support/tokens.rs"]
mod tokens;

use std::time::{Duration, Instant};

use grpc_auth::credentials::{CredentialsLayer, FileTokenSource, TokenSourceCredentials};
use grpc_auth_protos::helloworld::HelloRequest;
use grpc_auth_protos::helloworld::greeter_client::GreeterClient;
use serde_json::json;
use tonic::Code;

const SECRET: &str = "token-file-e2e-secret-0123456789abcdef";

fn token(sub: &str, exp_in: i64) -> String {
    let now = tokens::now();
    tokens::hs256(
        SECRET,
        &json!({"sub": sub, "iat": now, "exp": now + exp_in}),
    )
}

#[tokio::test]
async fn the_client_reads_its_token_from_a_file_and_follows_its_rotation() {
    let pki = tls::test_pki();
    let addr = greeter::spawn(greeter::ServerConfig {
        jwt_hs256_secret: Some(SECRET.into()),
        tls: Some((
            pki.cert_pem.clone().into_bytes(),
            pki.key_pem.clone().into_bytes(),
        )),
        ..Default::default()
    })
    .await;
    let dir = std::env::temp_dir().join(format!("grpc-auth-token-file-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("token");
    std::fs::write(&path, token("workload-1", 600)).unwrap();

    let creds = TokenSourceCredentials::new(
        FileTokenSource::new(&path).reread_every(Duration::from_secs(2)),
    )
    .refresh_ahead(Duration::from_secs(1));
    let channel = tls::channel(addr.port(), &pki.ca_pem).await;
    let target: http::Uri = format!("https://127.0.0.1:{}", addr.port())
        .parse()
        .unwrap();
    let mut client = GreeterClient::new(
        tower::ServiceBuilder::new()
            .layer(CredentialsLayer::new(creds, target))
            .service(channel),
    );
    let mut hello = async || {
        client
            .say_hello(HelloRequest { name: "Ada".into() })
            .await
            .map(|r| r.into_inner().message)
            .map_err(|s| (s.code(), s.message().to_owned()))
    };
    assert_eq!(
        hello().await,
        Ok("Hello Ada, authenticated as workload-1 via jwt".to_owned())
    );

    // The rotator replaces the file: within the re-read interval the new token is used.
    std::fs::write(&path, token("workload-2", 600)).unwrap();
    let start = Instant::now();
    loop {
        let got = hello().await;
        if got == Ok("Hello Ada, authenticated as workload-2 via jwt".to_owned()) {
            break;
        }
        assert_eq!(
            got,
            Ok("Hello Ada, authenticated as workload-1 via jwt".to_owned())
        );
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "rotation not picked up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A file holding an expired token: refused on the client (UNAUTHENTICATED) once
    // the cached token is due again.
    std::fs::write(&path, token("workload-3", -10)).unwrap();
    let start = Instant::now();
    loop {
        match hello().await {
            Err((code, message)) => {
                assert_eq!(code, Code::Unauthenticated, "{message}");
                assert!(message.contains("the token has expired"), "{message}");
                break;
            }
            Ok(m) => assert_eq!(m, "Hello Ada, authenticated as workload-2 via jwt"),
        }
        assert!(start.elapsed() < Duration::from_secs(6), "expiry not seen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
