//! grpc-auth as Envoy's external authorization service (`envoy.service.auth.v3`), with
//! the same scheme and policy flags as `greeter_server`, or `--config FILE`: one
//! configuration for a tonic service in process and for every service behind Envoy.
//!
//! ```text
//! cargo run --features ext-authz --example ext_authz_server -- --addr 127.0.0.1:9001 \
//!     --jwt-hs256-secret s3cret --jwt-issuer https://issuer.example --jwt-audience greeter \
//!     --basic-user ada:lovelace --api-key k-123=billing --hmac-key svc-a=s3cret \
//!     --public /helloworld.Greeter/SayHello \
//!     --require-scope /helloworld.Greeter/SayHelloAdmin=greeter.admin
//! cargo run --features ext-authz,config --example ext_authz_server -- --config auth.toml
//! ```
//! Envoy's `ext_authz` filter points at `--addr` (`grpc_service: envoy_grpc`,
//! `transport_api_version: V3`, `failure_mode_allow: false`, `status_on_error: 503`;
//! the README has the bootstrap). An allowed call reaches the upstream with
//! `x-auth-subject`, `x-auth-scheme` and `x-auth-scopes` (a client's copies never do);
//! `--remove-credentials` also strips the credentials it was accepted on. `--mtls`
//! authenticates by the client certificate Envoy verified (`include_peer_certificate:
//! true`). Only Envoy may reach this service: it trusts what Envoy says.

#[path = "support/auth_flags.rs"]
mod auth_flags;
#[path = "support/flags.rs"]
mod flags;
#[path = "support/greeter.rs"]
mod greeter;

use auth_flags::AuthFlags;
use clap::{CommandFactory, Parser};
use greeter::ServerConfig;
use grpc_auth::ext_authz::ExtAuthzServer;

/// grpc-auth as Envoy's external authorization service: every service behind Envoy gets
/// the checks `greeter_server` makes in process, with the same flags or --config file.
///
/// `/grpc.health.v1.Health/*` is always public (without --config); every other method
/// needs an authenticated caller unless it is `--public`.
#[derive(Parser)]
#[command(name = "ext_authz_server", args_override_self = true)]
struct Cli {
    /// Address to listen on (Envoy's ext_authz cluster)
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9001")]
    addr: String,

    /// Remove the credentials a call was accepted on before Envoy forwards it
    #[arg(long)]
    remove_credentials: bool,

    /// Authenticate by the client certificate Envoy verified (its SPIFFE ID, DNS SAN or
    /// subject; scheme `mtls`); other calls fall through to the other schemes. With
    /// --config, the file's [mtls] says this instead
    #[arg(long, conflicts_with = "config")]
    mtls: bool,

    #[command(flatten)]
    auth: AuthFlags,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let cli = Cli::parse();
    let mut config = ServerConfig {
        mtls: cli.mtls,
        ..ServerConfig::default()
    };
    let watch = cli.auth.apply(&mut config, Cli::command);
    // Kept for the server's life: dropping the watcher stops the reloads.
    let _watcher = auth_flags::start(watch, &mut config)?;
    let server = ExtAuthzServer::new(config.layer()?).remove_credentials(cli.remove_credentials);
    let listener = tokio::net::TcpListener::bind(&cli.addr).await?;
    println!("ext_authz listening on {}", listener.local_addr()?);
    tonic::transport::Server::builder()
        .add_service(server.into_service())
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
        .await?;
    Ok(())
}
