//! A Tyk Gateway gRPC coprocess plugin: the auth_check hook verifies HMAC request
//! signatures (the Tyk demo's `hmac.sh` format, or signatures over `(request-target)`)
//! with grpc-auth's verifier; the other hooks and events are logged as JSON.
//!
//! ```text
//! cargo run --example tyk_plugin -- --listen 127.0.0.1:50051 \
//!     --hmac-key 'eyJvcmciOiI1ZTlkOTU0NGExZGNkNjAwMDFkMGVkMjAiLCJpZCI6ImdycGNfaG1hY19rZXkiLCJoIjoibXVybXVyNjQifQ===c2VjcmV0' \
//!     --max-skew 300
//! ```
//! Gateway side: `coprocess_options.enable_coprocess: true`,
//! `coprocess_options.coprocess_grpc_server: "tcp://<host>:50051"`; the API has
//! `enable_coprocess_auth: true`, `custom_middleware.driver: "grpc"` and an
//! `auth_check` (e.g. `CustomHMACCheck`). `--max-skew 0` accepts any date;
//! `--replay-cache 0` turns replay protection off (hmac.sh-style clients sign the date
//! alone, so two requests within one second carry the same signature).

#[path = "support/flags.rs"]
mod flags;
#[path = "support/tyk.rs"]
mod tyk;

use std::sync::Arc;
use std::time::Duration;

use flags::key_secret;
use grpc_auth::clock::SystemClock;
use tyk::{PluginConfig, TykPlugin};

const USAGE: &str =
    "usage: tyk_plugin [--listen HOST:PORT] [--hmac-key KEY_ID=SECRET]... [--max-skew SECONDS]";

fn parse(args: impl Iterator<Item = String>) -> Result<(String, PluginConfig), String> {
    let mut listen = "127.0.0.1:50051".to_owned();
    let mut config = PluginConfig {
        clock: Arc::new(SystemClock),
        ..PluginConfig::default()
    };
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--listen" => listen = value()?,
            "--hmac-key" => config.hmac_keys.push(key_secret(&value()?)?),
            "--max-skew" => {
                let secs: u64 = value()?
                    .parse()
                    .map_err(|_| format!("--max-skew takes whole seconds\n{USAGE}"))?;
                config.max_skew = (secs > 0).then(|| Duration::from_secs(secs));
            }
            "--replay-cache" => {
                config.replay_cache_size = value()?
                    .parse()
                    .map_err(|_| format!("--replay-cache takes a number of entries\n{USAGE}"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    if config.hmac_keys.is_empty() {
        return Err(format!("at least one --hmac-key is needed\n{USAGE}"));
    }
    Ok((listen, config))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let (listen, config) = match parse(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!(
        "tyk coprocess plugin (coprocess.Dispatcher) listening on {} (plaintext), {} key(s)",
        listener.local_addr()?,
        config.hmac_keys.len()
    );
    tyk::serve(listener, TykPlugin::new(&config)).await
}
