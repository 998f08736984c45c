//! Calls the greeter with this crate's call credentials and prints the reply or the status.
//!
//! ```text
//! cargo run --example greeter_client -- --addr https://127.0.0.1:50051 --ca ca.pem --token eyJ...
//! cargo run --example greeter_client -- --addr http://127.0.0.1:50051 --api-key k-123 --insecure-plaintext
//! cargo run --example greeter_client -- --addr https://127.0.0.1:50051 --ca ca.pem --hmac svc-a=s3cret
//! ```
//! Several credential flags combine into one composite credential. `--login USER:PASSWORD`
//! logs in with Basic on the first call and sends the bearer the server answered with
//! (a server started with `--issue-tokens`); `--calls N` makes N calls to show it.

#[path = "support/flags.rs"]
mod flags;

use grpc_auth::credentials::{
    ApiKeyCredentials, BasicCredentials, BasicLogin, BearerToken, Composite, CredentialsLayer,
    HmacSigner, JwtAccessCredentials,
};
use grpc_auth_protos::helloworld::HelloRequest;
use grpc_auth_protos::helloworld::greeter_client::GreeterClient;
use jsonwebtoken::Algorithm;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

const USAGE: &str = "usage: greeter_client [--addr URL] [--ca PEM_FILE] [--name NAME] [--method hello|admin] \
[--token JWT] [--basic USER:PASSWORD] [--login USER:PASSWORD] [--api-key KEY] [--hmac KEY_ID=SECRET] [--jwt-key PEM_FILE --jwt-issuer ISS] \
[--calls N] [--insecure-plaintext]";

struct Args {
    addr: String,
    ca: Option<Vec<u8>>,
    name: String,
    admin: bool,
    creds: Composite,
    insecure_plaintext: bool,
    calls: u32,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        addr: "http://127.0.0.1:50051".into(),
        ca: None,
        name: "Ada".into(),
        admin: false,
        creds: Composite::new(),
        insecure_plaintext: false,
        calls: 1,
    };
    let mut jwt_key: Option<Vec<u8>> = None;
    let mut jwt_issuer = "greeter-client".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        let read = |p: String| std::fs::read(&p).map_err(|e| format!("{p}: {e}"));
        match flag.as_str() {
            "--addr" => a.addr = value()?,
            "--ca" => a.ca = Some(read(value()?)?),
            "--name" => a.name = value()?,
            "--method" => a.admin = value()? == "admin",
            "--token" => a.creds = std::mem::take(&mut a.creds).with(BearerToken::new(value()?)),
            "--basic" => {
                let v = value()?;
                let (u, p) = v.split_once(':').ok_or("--basic takes USER:PASSWORD")?;
                a.creds = std::mem::take(&mut a.creds).with(BasicCredentials::new(u, p));
            }
            "--login" => {
                let v = value()?;
                let (u, p) = v.split_once(':').ok_or("--login takes USER:PASSWORD")?;
                a.creds = std::mem::take(&mut a.creds).with(BasicLogin::new(u, p));
            }
            "--calls" => {
                a.calls = value()?
                    .parse()
                    .map_err(|_| "--calls takes a number".to_owned())?
            }
            "--api-key" => {
                a.creds = std::mem::take(&mut a.creds).with(ApiKeyCredentials::new(value()?))
            }
            "--hmac" => {
                let (id, secret) = flags::key_secret(&value()?)?;
                a.creds = std::mem::take(&mut a.creds).with(HmacSigner::new(id, secret));
            }
            "--jwt-key" => jwt_key = Some(read(value()?)?),
            "--jwt-issuer" => jwt_issuer = value()?,
            "--insecure-plaintext" => a.insecure_plaintext = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    if let Some(pem) = jwt_key {
        let creds = [Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA]
            .into_iter()
            .find_map(|alg| JwtAccessCredentials::from_pem(alg, &pem, jwt_issuer.as_str()).ok())
            .ok_or("--jwt-key: not an EC, RSA or Ed25519 private key (PKCS#8 PEM)")?;
        a.creds = std::mem::take(&mut a.creds).with(creds);
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = match parse() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let target: http::Uri = args.addr.parse()?;
    let mut endpoint = Endpoint::from(target.clone());
    if let Some(ca) = &args.ca {
        endpoint = endpoint
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))?;
    } else if target.scheme_str() == Some("https") {
        endpoint = endpoint.tls_config(ClientTlsConfig::new().with_enabled_roots())?;
    }
    let channel = endpoint.connect().await?;
    let mut layer = CredentialsLayer::new(args.creds, target);
    if args.insecure_plaintext {
        layer = layer.allow_plaintext();
    }
    let mut client = GreeterClient::new(tower::ServiceBuilder::new().layer(layer).service(channel));
    for _ in 0..args.calls.max(1) {
        let req = HelloRequest {
            name: args.name.clone(),
        };
        let res = if args.admin {
            client.say_hello_admin(req).await
        } else {
            client.say_hello(req).await
        };
        match res {
            Ok(reply) => println!("{}", reply.into_inner().message),
            Err(status) => {
                println!("status: {:?}: {}", status.code(), status.message());
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
