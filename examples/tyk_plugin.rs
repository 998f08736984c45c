//! A Tyk Gateway gRPC coprocess plugin: the auth_check hook verifies HMAC request
//! signatures (the Tyk demo's `hmac.sh` format, or signatures over `(request-target)`)
//! with grpc-auth's verifier; the other hooks and events are logged as JSON.
//!
//! ```text
//! cargo run --example tyk_plugin -- --listen 127.0.0.1:50051 \
//!     --hmac-key 'eyJvcmciOiI1ZTlkOTU0NGExZGNkNjAwMDFkMGVkMjAiLCJpZCI6ImdycGNfaG1hY19rZXkiLCJoIjoibXVybXVyNjQifQ===c2VjcmV0' \
//!     --max-skew 300
//! cargo run --example tyk_plugin -- --help
//! ```
//! Gateway side: `coprocess_options.enable_coprocess: true`,
//! `coprocess_options.coprocess_grpc_server: "tcp://<host>:50051"`; the API has
//! `enable_coprocess_auth: true`, `custom_middleware.driver: "grpc"` and an
//! `auth_check` (e.g. `CustomHMACCheck`). `--max-skew 0` accepts any date;
//! `--replay-cache 0` turns replay protection off (hmac.sh-style clients sign the date
//! alone, so two requests within one second carry the same signature).
//!
//! The key may come from the environment instead: `GRPC_AUTH_HMAC_KEY` (one
//! `KEY_ID=SECRET`).

#[path = "support/flags.rs"]
mod flags;
#[path = "support/tyk.rs"]
mod tyk;

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use grpc_auth::clock::SystemClock;
use tyk::{PluginConfig, TykPlugin};

/// A Tyk Gateway gRPC coprocess plugin (coprocess.Dispatcher, plaintext): its auth_check
/// hook verifies HMAC request signatures with grpc-auth; other hooks and events are
/// logged as JSON.
///
/// Gateway side: `coprocess_options.enable_coprocess: true` and
/// `coprocess_options.coprocess_grpc_server: "tcp://<host>:<port>"`; the API sets
/// `enable_coprocess_auth: true`, `custom_middleware.driver: "grpc"` and an `auth_check`.
#[derive(Parser)]
#[command(name = "tyk_plugin", args_override_self = true)]
struct Cli {
    /// Address to listen on
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50051")]
    listen: String,

    /// HMAC key id and secret (the key id may end in base64 `=` padding); repeatable, at least one
    #[arg(
        long,
        required = true,
        value_name = "KEY_ID=SECRET",
        value_parser = flags::key_secret,
        env = "GRPC_AUTH_HMAC_KEY",
        hide_env_values = true
    )]
    hmac_key: Vec<(String, String)>,

    /// Allowed distance of a request's `Date` from the clock; 0 accepts any date
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    max_skew: u64,

    /// Accepted signatures remembered against replay; 0 turns replay protection off
    #[arg(long, value_name = "ENTRIES", default_value_t = 65_536)]
    replay_cache: usize,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let cli = Cli::parse();
    let config = PluginConfig {
        hmac_keys: cli.hmac_key,
        max_skew: (cli.max_skew > 0).then(|| Duration::from_secs(cli.max_skew)),
        replay_cache_size: cli.replay_cache,
        clock: Arc::new(SystemClock),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let listener = tokio::net::TcpListener::bind(&cli.listen).await?;
    println!(
        "tyk coprocess plugin (coprocess.Dispatcher) listening on {} (plaintext), {} key(s)",
        listener.local_addr()?,
        config.hmac_keys.len()
    );
    tyk::serve(listener, TykPlugin::new(&config)).await
}
