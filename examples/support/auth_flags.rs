//! The scheme, policy and shared-state flags `greeter_server` and `ext_authz_server`
//! share (one configuration for a tonic service in process and for every service behind
//! Envoy), and `--config FILE`, the same in a TOML file.
#![allow(dead_code)]

use std::path::PathBuf;

use clap::error::ErrorKind;

use crate::flags::{self, FileBytes};
use crate::greeter::{Introspection, IntrospectionEndpoint, ServerConfig};
use grpc_auth::authn::token_exchange::TokenKeys;

/// Every configured scheme is accepted (one credential decides; a bad one is refused).
/// Repeatable flags may be given several times.
#[derive(clap::Args)]
pub(crate) struct AuthFlags {
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
    pub(crate) config: Option<PathBuf>,

    /// HS256 secret that verifies bearer JWTs
    #[arg(
        allow_hyphen_values = true,
        long,
        value_name = "SECRET",
        env = "GRPC_AUTH_JWT_HS256_SECRET",
        hide_env_values = true
    )]
    jwt_hs256_secret: Option<String>,

    /// PEM public key that verifies bearer JWTs (RSA, EC or Ed25519); repeatable
    #[arg(long, value_name = "PEM_FILE", value_parser = flags::read_file)]
    pub(crate) jwt_public_key: Vec<FileBytes>,

    /// Issuer (`iss`) a JWT must carry; also the issuer of the --jwks-url keys
    #[arg(long, value_name = "ISSUER")]
    pub(crate) jwt_issuer: Option<String>,

    /// Audience (`aud`) a JWT must carry
    #[arg(long, value_name = "AUDIENCE")]
    pub(crate) jwt_audience: Option<String>,

    /// JWKS URL to fetch JWT keys from (tokens issued by --jwt-issuer); repeatable
    #[arg(
        long,
        value_name = "URL",
        conflicts_with_all = ["jwt_hs256_secret", "jwt_public_key"]
    )]
    pub(crate) jwks_url: Vec<String>,

    /// Issuer whose JWT keys are found by OpenID Connect discovery; repeatable, chosen by `iss`
    #[arg(
        long,
        value_name = "ISSUER",
        conflicts_with_all = ["jwt_hs256_secret", "jwt_public_key"]
    )]
    pub(crate) oidc_issuer: Vec<String>,

    /// Basic user; a password starting with `$argon2` is a PHC hash; repeatable
    #[arg(
        long,
        value_name = "USER:PASSWORD",
        value_parser = flags::Secret(flags::user_password),
        allow_hyphen_values = true
    )]
    pub(crate) basic_user: Vec<(String, String)>,

    /// API key (sent as `x-api-key`) and the principal it authenticates as; repeatable
    #[arg(
        long,
        value_name = "KEY=PRINCIPAL",
        value_parser = flags::Secret(flags::key_principal),
        allow_hyphen_values = true
    )]
    pub(crate) api_key: Vec<(String, String)>,

    /// HMAC request-signature key id and secret; repeatable
    #[arg(
        allow_hyphen_values = true,
        long,
        value_name = "KEY_ID=SECRET",
        value_parser = flags::Secret(flags::key_secret),
        env = "GRPC_AUTH_HMAC_KEY",
        hide_env_values = true
    )]
    pub(crate) hmac_key: Vec<(String, String)>,

    /// Method path or pattern (`/pkg.Service/*`) callable without credentials; repeatable
    #[arg(long, value_name = "METHOD_PATH", value_parser = flags::method_pattern)]
    pub(crate) public: Vec<String>,

    /// Method path or pattern that needs a scope; repeatable
    #[arg(long, value_name = "METHOD_PATH=SCOPE", value_parser = flags::method_scope)]
    pub(crate) require_scope: Vec<(String, String)>,

    /// Answer Basic logins with `authorization: Bearer <token>` (HS256, 15 minutes)
    #[arg(long)]
    pub(crate) issue_tokens: bool,

    /// Secret that signs issued tokens (32 bytes or more; shared by replicas) [default: a random key]
    #[arg(
        allow_hyphen_values = true,
        long,
        value_name = "SECRET",
        env = "GRPC_AUTH_TOKEN_SECRET",
        hide_env_values = true,
        requires = "issue_tokens"
    )]
    pub(crate) token_secret: Option<String>,

    /// Redis shared by every replica (`redis://HOST:PORT`): HMAC replay protection,
    /// JWT revocations, failed-login limits and (with --issue-tokens) opaque tokens
    #[arg(
        long,
        value_name = "URL",
        env = "GRPC_AUTH_REDIS",
        hide_env_values = true
    )]
    pub(crate) redis: Option<String>,

    /// Prefix of every key in --redis (services sharing a Redis keep apart by prefix)
    #[arg(long, value_name = "PREFIX", requires = "redis")]
    pub(crate) redis_prefix: Option<String>,

    /// Seconds replay and revocation checks are refused after --redis lost its data
    /// (restarted empty) [default: 600]
    #[arg(long, value_name = "SECS", requires = "redis")]
    pub(crate) redis_quarantine: Option<u64>,

    /// gRPC authorization policy file (gRFC A43 JSON), checked on every call after the
    /// other flags; callers are named `{scheme}:{subject}` (`jwt:ada`, `api-key:billing`),
    /// client certificates by their SANs. Reloaded when it changes; a bad reload keeps the
    /// last valid policy (and is logged)
    #[arg(long, value_name = "JSON_FILE", value_parser = flags::authz_policy)]
    pub(crate) authz_policy: Option<String>,

    /// OAuth 2.0 token introspection endpoint (RFC 7662): opaque bearer tokens are
    /// accepted when it calls them active (with --client-id, --client-secret)
    #[arg(
        long,
        value_name = "URL",
        requires_all = ["client_id", "client_secret"],
        conflicts_with = "introspection_issuer"
    )]
    pub(crate) introspection_url: Option<String>,

    /// Issuer whose discovery document names the introspection endpoint
    #[arg(long, value_name = "ISSUER", requires_all = ["client_id", "client_secret"])]
    pub(crate) introspection_issuer: Option<String>,

    /// This server's OAuth 2.0 client id at the introspection endpoint
    #[arg(long, value_name = "ID")]
    pub(crate) client_id: Option<String>,

    /// This server's OAuth 2.0 client secret (client_secret_basic)
    #[arg(
        allow_hyphen_values = true,
        long,
        value_name = "SECRET",
        env = "GRPC_AUTH_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub(crate) client_secret: Option<String>,

    /// Seconds an active introspection answer is reused (never past the token's exp)
    /// [default: 30]
    #[arg(long, value_name = "SECS")]
    pub(crate) introspection_cache_ttl: Option<u64>,

    /// Audience (`aud`) an introspected token must carry
    #[arg(long, value_name = "AUDIENCE")]
    pub(crate) introspection_audience: Option<String>,

    /// How often --authz-policy is checked for changes, in seconds
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 1,
        requires = "authz_policy"
    )]
    pub(crate) authz_policy_reload: u64,
}

/// Logs to stderr (`RUST_LOG`, default `info`) and starts watching the authorization
/// policy file, if any, putting its policy in `config`: the watcher, to keep for the
/// server's life (dropping it stops the reloads).
pub(crate) fn start(
    watch: Watch,
    config: &mut ServerConfig,
) -> Result<Option<grpc_auth::authz::PolicyWatcher>, grpc_auth::authz::PolicyFileError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let Some((path, secs)) = watch else {
        return Ok(None);
    };
    let watcher = grpc_auth::authz::PolicyWatcher::builder(path)
        .interval(std::time::Duration::from_secs(secs))
        .start()?;
    config.authz_policy = Some(watcher.policy());
    Ok(Some(watcher))
}

/// What a policy file to watch is: its path and how often it is checked, in seconds.
pub(crate) type Watch = Option<(PathBuf, u64)>;

impl AuthFlags {
    /// Puts the schemes, policy and shared state into `config` (from the file when
    /// `--config` is given); the authorization policy file to watch. `command` names the
    /// program in errors.
    pub(crate) fn apply(
        self,
        config: &mut ServerConfig,
        command: impl Fn() -> clap::Command,
    ) -> Watch {
        let token_keys = self.token_secret.map(|secret| {
            TokenKeys::hs256("k1", secret.as_str()).unwrap_or_else(|e| {
                command()
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
        let from_flags = ServerConfig {
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
            issue_tokens: self.issue_tokens,
            token_keys,
            redis: self.redis,
            redis_prefix: self.redis_prefix,
            redis_quarantine: self.redis_quarantine.map(std::time::Duration::from_secs),
            introspection,
            ..std::mem::take(config)
        };
        *config = from_flags;
        let watch = self
            .authz_policy
            .map(|path| (PathBuf::from(path), self.authz_policy_reload.max(1)));
        match self.config {
            Some(path) => with_config_file(config, &path),
            None => watch,
        }
    }
}

/// `config` with the schemes and policy of the file at `path`, and the authorization
/// policy file it names (watched as --authz-policy's is). A bad file is reported
/// (`file:line: what is wrong`) and the process exits with status 2.
#[cfg(feature = "config")]
fn with_config_file(config: &mut ServerConfig, path: &std::path::Path) -> Watch {
    let file = grpc_auth::config::AuthConfig::from_file(path).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let watch = file.authorization_policy_path().map(|p| (p.to_owned(), 1));
    config.auth_config = Some(file);
    watch
}

#[cfg(not(feature = "config"))]
fn with_config_file(_: &mut ServerConfig, _: &std::path::Path) -> Watch {
    eprintln!(
        "--config needs grpc-auth's `config` feature \
         (cargo run --features config --example ... -- --config FILE)"
    );
    std::process::exit(2)
}
