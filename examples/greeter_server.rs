//! The helloworld Greeter behind grpc-auth.
//!
//! ```text
//! cargo run --example greeter_server -- --addr 127.0.0.1:50051 \
//!     --jwt-hs256-secret s3cret --jwt-issuer https://issuer.example --jwt-audience greeter \
//!     --basic-user ada:lovelace --api-key k-123=billing --hmac-key svc-a=s3cret \
//!     --public /helloworld.Greeter/SayHello \
//!     --require-scope /helloworld.Greeter/SayHelloAdmin=greeter.admin
//! ```
//! `/grpc.health.v1.Health/*` is always public. A `--basic-user` password that starts
//! with `$argon2` is read as a PHC hash.
//!
//! Remote keys instead of `--jwt-hs256-secret`/`--jwt-public-key`: `--jwks-url URL`
//! (its tokens' issuer is `--jwt-issuer`) or `--oidc-issuer ISSUER` (OpenID Connect
//! discovery), repeatable; several sources are chosen by the token's `iss`.
//!
//! `--issue-tokens` answers Basic logins with `authorization: Bearer <token>` (HS256,
//! 15 minutes), signed with `--token-secret` (32 bytes or more, shared by replicas) or a
//! random key.

#[path = "support/flags.rs"]
mod flags;
#[path = "support/greeter.rs"]
mod greeter;

use flags::{key_secret, pair};
use greeter::ServerConfig;

const USAGE: &str = "usage: greeter_server [--addr HOST:PORT] [--jwt-hs256-secret S] [--jwt-public-key PEM_FILE]... \
[--jwt-issuer ISS] [--jwt-audience AUD] [--jwks-url URL]... [--oidc-issuer ISSUER]... [--basic-user USER:PASSWORD]... [--api-key KEY=PRINCIPAL]... [--hmac-key KEY_ID=SECRET]... \
[--public METHOD_PATH]... [--require-scope METHOD_PATH=SCOPE]... [--tls-cert PEM --tls-key PEM] \
[--issue-tokens [--token-secret SECRET]]";

fn parse(args: impl Iterator<Item = String>) -> Result<(String, ServerConfig), String> {
    let mut addr = "127.0.0.1:50051".to_owned();
    let mut c = ServerConfig::default();
    let (mut tls_cert, mut tls_key) = (None, None);
    let read = |path: &str| std::fs::read(path).map_err(|e| format!("{path}: {e}"));
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--addr" => addr = value()?,
            "--jwt-hs256-secret" => c.jwt_hs256_secret = Some(value()?),
            "--jwt-public-key" => {
                let path = value()?;
                c.jwt_public_keys
                    .push(std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?);
            }
            "--jwt-issuer" => c.jwt_issuer = Some(value()?),
            "--jwt-audience" => c.jwt_audience = Some(value()?),
            "--jwks-url" => c.jwks_urls.push(value()?),
            "--oidc-issuer" => c.oidc_issuers.push(value()?),
            "--basic-user" => c.basic_users.push(pair(&value()?, ':')?),
            "--api-key" => c.api_keys.push(pair(&value()?, '=')?),
            "--hmac-key" => c.hmac_keys.push(key_secret(&value()?)?),
            "--public" => c.public.push(value()?),
            "--require-scope" => c.require_scope.push(pair(&value()?, '=')?),
            "--tls-cert" => tls_cert = Some(read(&value()?)?),
            "--tls-key" => tls_key = Some(read(&value()?)?),
            "--issue-tokens" => c.issue_tokens = true,
            "--token-secret" => {
                let secret = value()?;
                c.token_keys = Some(
                    grpc_auth::authn::token_exchange::TokenKeys::hs256("k1", secret.as_str())
                        .map_err(|e| format!("--token-secret: {e}"))?,
                );
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    if c.token_keys.is_some() && !c.issue_tokens {
        return Err("--token-secret needs --issue-tokens".into());
    }
    c.tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    Ok((addr, c))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let (addr, config) = match parse(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    println!("greeter listening on {scheme}://{}", listener.local_addr()?);
    greeter::serve(listener, &config).await
}
