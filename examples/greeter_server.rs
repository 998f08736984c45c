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

#[path = "support/flags.rs"]
mod flags;
#[path = "support/greeter.rs"]
mod greeter;

use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use flags::FileBytes;
use greeter::{Introspection, IntrospectionEndpoint, ServerConfig};
use grpc_auth::authn::token_exchange::TokenKeys;

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

    /// Configuration file (TOML, see `grpc_auth::config`; needs the crate feature
    /// `config`): schemes, keys and the policy, instead of the scheme and policy flags.
    /// The health service is public only if the file says so. --redis replaces the
    /// file's [redis]; --client-ca only has TLS ask for client certificates (the file's
    /// [mtls] authenticates by them). The authorization policy file it names is reloaded
    /// as it changes. A bad file is reported as FILE:LINE: what is wrong (exit status 2)
    #[arg(
        long,
        value_name = "TOML_FILE",
        conflicts_with_all = [
            "jwt_hs256_secret", "jwt_public_key", "jwt_issuer", "jwt_audience", "jwks_url",
            "oidc_issuer", "basic_user", "api_key", "hmac_key", "public", "require_scope",
            "issue_tokens", "token_secret", "authz_policy", "introspection_url",
            "introspection_issuer", "client_id", "client_secret", "introspection_cache_ttl",
            "introspection_audience",
        ]
    )]
    config: Option<PathBuf>,

    /// HS256 secret that verifies bearer JWTs
    #[arg(
        long,
        value_name = "SECRET",
        env = "GRPC_AUTH_JWT_HS256_SECRET",
        hide_env_values = true
    )]
    jwt_hs256_secret: Option<String>,

    /// PEM public key that verifies bearer JWTs (RSA, EC or Ed25519); repeatable
    #[arg(long, value_name = "PEM_FILE", value_parser = flags::read_file)]
    jwt_public_key: Vec<FileBytes>,

    /// Issuer (`iss`) a JWT must carry; also the issuer of the --jwks-url keys
    #[arg(long, value_name = "ISSUER")]
    jwt_issuer: Option<String>,

    /// Audience (`aud`) a JWT must carry
    #[arg(long, value_name = "AUDIENCE")]
    jwt_audience: Option<String>,

    /// JWKS URL to fetch JWT keys from (tokens issued by --jwt-issuer); repeatable
    #[arg(
        long,
        value_name = "URL",
        conflicts_with_all = ["jwt_hs256_secret", "jwt_public_key"]
    )]
    jwks_url: Vec<String>,

    /// Issuer whose JWT keys are found by OpenID Connect discovery; repeatable, chosen by `iss`
    #[arg(
        long,
        value_name = "ISSUER",
        conflicts_with_all = ["jwt_hs256_secret", "jwt_public_key"]
    )]
    oidc_issuer: Vec<String>,

    /// Basic user; a password starting with `$argon2` is a PHC hash; repeatable
    #[arg(long, value_name = "USER:PASSWORD", value_parser = flags::user_password)]
    basic_user: Vec<(String, String)>,

    /// API key (sent as `x-api-key`) and the principal it authenticates as; repeatable
    #[arg(long, value_name = "KEY=PRINCIPAL", value_parser = flags::key_principal)]
    api_key: Vec<(String, String)>,

    /// HMAC request-signature key id and secret; repeatable
    #[arg(
        long,
        value_name = "KEY_ID=SECRET",
        value_parser = flags::key_secret,
        env = "GRPC_AUTH_HMAC_KEY",
        hide_env_values = true
    )]
    hmac_key: Vec<(String, String)>,

    /// Method path or pattern (`/pkg.Service/*`) callable without credentials; repeatable
    #[arg(long, value_name = "METHOD_PATH")]
    public: Vec<String>,

    /// Method path or pattern that needs a scope; repeatable
    #[arg(long, value_name = "METHOD_PATH=SCOPE", value_parser = flags::method_scope)]
    require_scope: Vec<(String, String)>,

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

    /// Answer Basic logins with `authorization: Bearer <token>` (HS256, 15 minutes)
    #[arg(long)]
    issue_tokens: bool,

    /// Secret that signs issued tokens (32 bytes or more; shared by replicas) [default: a random key]
    #[arg(
        long,
        value_name = "SECRET",
        env = "GRPC_AUTH_TOKEN_SECRET",
        hide_env_values = true,
        requires = "issue_tokens"
    )]
    token_secret: Option<String>,

    /// Redis shared by every replica (`redis://HOST:PORT`): HMAC replay protection,
    /// JWT revocations, failed-login limits and (with --issue-tokens) opaque tokens
    #[arg(
        long,
        value_name = "URL",
        env = "GRPC_AUTH_REDIS",
        hide_env_values = true
    )]
    redis: Option<String>,

    /// Prefix of every key in --redis (services sharing a Redis keep apart by prefix)
    #[arg(long, value_name = "PREFIX", requires = "redis")]
    redis_prefix: Option<String>,

    /// Seconds replay and revocation checks are refused after --redis lost its data
    /// (restarted empty) [default: 600]
    #[arg(long, value_name = "SECS", requires = "redis")]
    redis_quarantine: Option<u64>,

    /// gRPC authorization policy file (gRFC A43 JSON), checked on every call after the
    /// other flags; callers are named `{scheme}:{subject}` (`jwt:ada`, `api-key:billing`),
    /// client certificates by their SANs. Reloaded when it changes; a bad reload keeps the
    /// last valid policy (and is logged)
    #[arg(long, value_name = "JSON_FILE", value_parser = flags::authz_policy)]
    authz_policy: Option<String>,

    /// OAuth 2.0 token introspection endpoint (RFC 7662): opaque bearer tokens are
    /// accepted when it calls them active (with --client-id, --client-secret)
    #[arg(
        long,
        value_name = "URL",
        requires_all = ["client_id", "client_secret"],
        conflicts_with = "introspection_issuer"
    )]
    introspection_url: Option<String>,

    /// Issuer whose discovery document names the introspection endpoint
    #[arg(long, value_name = "ISSUER", requires_all = ["client_id", "client_secret"])]
    introspection_issuer: Option<String>,

    /// This server's OAuth 2.0 client id at the introspection endpoint
    #[arg(long, value_name = "ID")]
    client_id: Option<String>,

    /// This server's OAuth 2.0 client secret (client_secret_basic)
    #[arg(
        long,
        value_name = "SECRET",
        env = "GRPC_AUTH_CLIENT_SECRET",
        hide_env_values = true
    )]
    client_secret: Option<String>,

    /// Seconds an active introspection answer is reused (never past the token's exp)
    /// [default: 30]
    #[arg(long, value_name = "SECS")]
    introspection_cache_ttl: Option<u64>,

    /// Audience (`aud`) an introspected token must carry
    #[arg(long, value_name = "AUDIENCE")]
    introspection_audience: Option<String>,

    /// How often --authz-policy is checked for changes, in seconds
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 1,
        requires = "authz_policy"
    )]
    authz_policy_reload: u64,
}

impl Cli {
    fn into_config(self) -> (String, ServerConfig, Watch) {
        let token_keys = self.token_secret.map(|secret| {
            TokenKeys::hs256("k1", secret.as_str()).unwrap_or_else(|e| {
                Cli::command()
                    .error(ErrorKind::ValueValidation, format!("--token-secret: {e}"))
                    .exit()
            })
        });
        let endpoint = match (self.introspection_url, self.introspection_issuer) {
            (Some(url), _) => Some(IntrospectionEndpoint::Url(url)),
            (None, Some(iss)) => Some(IntrospectionEndpoint::Issuer(iss)),
            (None, None) => None,
        };
        let introspection = endpoint.map(|endpoint| Introspection {
            endpoint,
            client_id: self.client_id.unwrap_or_default(),
            client_secret: self.client_secret.unwrap_or_default(),
            cache_ttl: self
                .introspection_cache_ttl
                .map(std::time::Duration::from_secs),
            audience: self.introspection_audience,
        });
        let config = ServerConfig {
            jwt_hs256_secret: self.jwt_hs256_secret,
            jwt_public_keys: self.jwt_public_key.into_iter().map(|f| f.0).collect(),
            jwt_issuer: self.jwt_issuer,
            jwt_audience: self.jwt_audience,
            jwks_urls: self.jwks_url,
            oidc_issuers: self.oidc_issuer,
            basic_users: self.basic_user,
            api_keys: self.api_key,
            hmac_keys: self.hmac_key,
            public: self.public,
            require_scope: self.require_scope,
            tls: self.tls_cert.zip(self.tls_key).map(|(c, k)| (c.0, k.0)),
            issue_tokens: self.issue_tokens,
            token_keys,
            redis: self.redis,
            redis_prefix: self.redis_prefix,
            redis_quarantine: self.redis_quarantine.map(std::time::Duration::from_secs),
            client_ca: self.client_ca.map(|f| f.0),
            introspection,
            ..ServerConfig::default()
        };
        let watch = self
            .authz_policy
            .map(|path| (PathBuf::from(path), self.authz_policy_reload.max(1)));
        (self.addr, config, watch)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let cli = Cli::parse();
    let file = cli.config.clone();
    let (addr, mut config, mut watch) = cli.into_config();
    if let Some(path) = file {
        (config, watch) = with_config_file(config, &path);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    // Kept for the server's life: dropping the watcher stops the reloads.
    let _watcher = match watch {
        Some((path, secs)) => {
            let watcher = grpc_auth::authz::PolicyWatcher::builder(path)
                .interval(std::time::Duration::from_secs(secs))
                .start()?;
            config.authz_policy = Some(watcher.policy());
            Some(watcher)
        }
        None => None,
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

/// What a policy file to watch is: its path and how often it is checked, in seconds.
type Watch = Option<(PathBuf, u64)>;

/// `config` with the schemes and policy of the file at `path`, and the authorization
/// policy file it names (watched as --authz-policy's is). A bad file is reported
/// (`file:line: what is wrong`) and the process exits with status 2.
#[cfg(feature = "config")]
fn with_config_file(mut config: ServerConfig, path: &std::path::Path) -> (ServerConfig, Watch) {
    let file = grpc_auth::config::AuthConfig::from_file(path).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let watch = file.authorization_policy_path().map(|p| (p.to_owned(), 1));
    config.auth_config = Some(file);
    (config, watch)
}

#[cfg(not(feature = "config"))]
fn with_config_file(_: ServerConfig, _: &std::path::Path) -> (ServerConfig, Watch) {
    eprintln!(
        "--config needs grpc-auth's `config` feature \
         (cargo run --example greeter_server --features config -- --config FILE)"
    );
    std::process::exit(2)
}
