//! The helloworld Greeter behind grpc-auth.
//!
//! ```text
//! cargo run --example greeter_server -- --addr 127.0.0.1:50051 \
//!     --jwt-hs256-secret s3cret --jwt-issuer https://issuer.example --jwt-audience greeter \
//!     --basic-user ada:lovelace --api-key k-123=billing --hmac-key svc-a=s3cret \
//!     --public /helloworld.Greeter/SayHello \
//!     --require-scope /helloworld.Greeter/SayHelloAdmin=greeter.admin
//! cargo run --example greeter_server -- --help
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
//!
//! `--redis redis://127.0.0.1:6379` shares state with every replica that names the same
//! Redis: a signed HMAC request is accepted once across them, a JWT revoked (see the
//! `revoke` example) is refused by all, failed Basic logins meet one limit, and
//! `--issue-tokens` issues opaque tokens kept in Redis (valid on every replica, across
//! restarts) instead of signed ones. Redis down: the calls that need it are refused
//! `UNAVAILABLE`; the others go on.
//!
//! `--introspection-url URL --client-id ID --client-secret S` (or `--introspection-issuer
//! ISSUER`, found by discovery) accepts opaque bearer tokens the identity provider calls
//! active (RFC 7662); JWTs are still verified locally when a JWT key is configured.
//!
//! `--config FILE` (crate feature `config`) takes the schemes, keys and policy from a
//! TOML file instead of the flags (the format: `grpc_auth::config`); only `--addr`,
//! `--tls-*`, `--client-ca` and `--redis*` combine with it. A bad file is reported as
//! `file:line: what is wrong` and the server exits with status 2:
//!
//! ```text
//! cargo run --example greeter_server --features config -- --config greeter.toml
//! ```
//!
//! Secrets may come from the environment instead of the command line:
//! `GRPC_AUTH_JWT_HS256_SECRET`, `GRPC_AUTH_HMAC_KEY` (one `KEY_ID=SECRET`),
//! `GRPC_AUTH_TOKEN_SECRET`, `GRPC_AUTH_CLIENT_SECRET`.

#[path = "support/auth_flags.rs"]
mod auth_flags;
#[path = "support/flags.rs"]
mod flags;
#[path = "support/greeter.rs"]
mod greeter;

use auth_flags::{AuthFlags, Watch};
use clap::{CommandFactory, Parser};
use flags::FileBytes;
use greeter::ServerConfig;

/// The helloworld Greeter behind grpc-auth: JWT, Basic, API-key and HMAC authentication
/// with a per-method policy, over plaintext or TLS.
///
/// Every configured scheme is accepted (one credential decides; a bad one is refused).
/// `/grpc.health.v1.Health/*` is always public; every other method needs an authenticated
/// caller unless it is `--public`. Repeatable flags may be given several times.
#[derive(Parser)]
#[command(name = "greeter_server", args_override_self = true)]
struct Cli {
    /// Address to listen on
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50051")]
    addr: String,

    /// PEM certificate chain: serve TLS (with --tls-key)
    #[arg(
        long,
        value_name = "PEM_FILE",
        value_parser = flags::read_file,
        requires = "tls_key"
    )]
    tls_cert: Option<FileBytes>,

    /// PEM private key of --tls-cert
    #[arg(
        long,
        value_name = "PEM_FILE",
        value_parser = flags::read_file,
        requires = "tls_cert"
    )]
    tls_key: Option<FileBytes>,

    /// PEM CA for client certificates (mutual TLS, with --tls-cert): a verified
    /// certificate authenticates by its SPIFFE ID, DNS SAN or subject (scheme `mtls`); a
    /// call without one falls through to the other schemes
    #[arg(
        long,
        value_name = "PEM_FILE",
        value_parser = flags::read_file,
        requires = "tls_cert"
    )]
    client_ca: Option<FileBytes>,

    #[command(flatten)]
    auth: AuthFlags,
}

impl Cli {
    fn into_config(self) -> (String, ServerConfig, Watch) {
        let mut config = ServerConfig {
            tls: self.tls_cert.zip(self.tls_key).map(|(c, k)| (c.0, k.0)),
            client_ca: self.client_ca.map(|f| f.0),
            ..ServerConfig::default()
        };
        let watch = self.auth.apply(&mut config, Cli::command);
        (self.addr, config, watch)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (addr, mut config, watch) = Cli::parse().into_config();
    // Kept for the server's life: dropping the watcher stops the reloads.
    let _watcher = auth_flags::start(watch, &mut config)?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    println!("greeter listening on {scheme}://{}", listener.local_addr()?);
    greeter::serve(listener, &config).await
}
