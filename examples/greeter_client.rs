//! Calls the greeter with this crate's call credentials and prints the reply or the status.
//!
//! ```text
//! cargo run --example greeter_client -- --addr https://127.0.0.1:50051 --ca ca.pem --token eyJ...
//! cargo run --example greeter_client -- --addr http://127.0.0.1:50051 --api-key k-123 --insecure-plaintext
//! cargo run --example greeter_client -- --addr https://127.0.0.1:50051 --ca ca.pem --hmac svc-a=s3cret
//! cargo run --example greeter_client -- --help
//! ```
//! Several credential flags combine into one composite credential, applied in command-line
//! order (`--jwt-key` last). `--login USER:PASSWORD` logs in with Basic on the first call
//! and sends the bearer the server answered with (a server started with `--issue-tokens`);
//! `--calls N` makes N calls to show it.
//!
//! `--oauth2-token-url URL --client-id ID --client-secret S [--scope S] [--resource R]`
//! fetches bearer tokens by the OAuth 2.0 client-credentials grant and refreshes them
//! before they expire; `--token-file PATH` sends the token a file holds (a Kubernetes
//! projected service-account token), re-read when it changes.
//!
//! Credentials may come from the environment instead of the command line:
//! `GRPC_AUTH_TOKEN`, `GRPC_AUTH_BASIC`, `GRPC_AUTH_LOGIN`, `GRPC_AUTH_API_KEY`,
//! `GRPC_AUTH_HMAC` (one value each), `GRPC_AUTH_CLIENT_SECRET`.

#[path = "support/flags.rs"]
mod flags;

use clap::error::ErrorKind;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};
use flags::FileBytes;
use grpc_auth::credentials::{
    ApiKeyCredentials, BasicCredentials, BasicLogin, BearerToken, Composite, CredentialsLayer,
    FileTokenSource, HmacSigner, JwtAccessCredentials, TokenSourceCredentials,
};
use grpc_auth_protos::helloworld::HelloRequest;
use grpc_auth_protos::helloworld::greeter_client::GreeterClient;
use jsonwebtoken::Algorithm;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

/// Calls the helloworld Greeter with grpc-auth call credentials and prints the reply, or
/// the gRPC status (then exits 1).
///
/// Credential flags may be repeated and combined; they are applied in command-line order
/// (`--jwt-key` last). A credential that needs transport security is refused on an
/// `http://` address unless --insecure-plaintext is given.
#[derive(Parser)]
#[command(name = "greeter_client", args_override_self = true)]
struct Cli {
    /// Server URL: `https://` for TLS, `http://` for plaintext
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:50051")]
    addr: http::Uri,

    /// PEM CA certificate to trust [default: the system roots for an `https://` address]
    #[arg(long, value_name = "PEM_FILE", value_parser = flags::read_file)]
    ca: Option<FileBytes>,

    /// PEM client certificate to present (mutual TLS, with --key)
    #[arg(long, value_name = "PEM_FILE", value_parser = flags::read_file, requires = "key")]
    cert: Option<FileBytes>,

    /// PEM private key of --cert
    #[arg(long, value_name = "PEM_FILE", value_parser = flags::read_file, requires = "cert")]
    key: Option<FileBytes>,

    /// Name to greet
    #[arg(long, default_value = "Ada")]
    name: String,

    /// Method to call
    #[arg(long, value_enum, default_value_t = Method::Hello)]
    method: Method,

    /// Bearer token (e.g. a JWT) to send; repeatable
    #[arg(
        allow_hyphen_values = true,
        long,
        value_name = "TOKEN",
        env = "GRPC_AUTH_TOKEN",
        hide_env_values = true
    )]
    token: Vec<String>,

    /// Basic credentials to send on every call; repeatable
    #[arg(
        allow_hyphen_values = true,
        long,
        value_name = "USER:PASSWORD",
        value_parser = flags::Secret(flags::user_password),
        env = "GRPC_AUTH_BASIC",
        hide_env_values = true
    )]
    basic: Vec<(String, String)>,

    /// Log in with Basic once, then send the bearer token the server answers with
    /// (a server with --issue-tokens); repeatable
    #[arg(
        allow_hyphen_values = true,
        long,
        value_name = "USER:PASSWORD",
        value_parser = flags::Secret(flags::user_password),
        env = "GRPC_AUTH_LOGIN",
        hide_env_values = true
    )]
    login: Vec<(String, String)>,

    /// API key to send as `x-api-key`; repeatable
    #[arg(
        allow_hyphen_values = true,
        long,
        value_name = "KEY",
        env = "GRPC_AUTH_API_KEY",
        hide_env_values = true
    )]
    api_key: Vec<String>,

    /// Sign each call with this HMAC key (HTTP Signatures); repeatable
    #[arg(
        allow_hyphen_values = true,
        long,
        value_name = "KEY_ID=SECRET",
        value_parser = flags::Secret(flags::key_secret),
        env = "GRPC_AUTH_HMAC",
        hide_env_values = true
    )]
    hmac: Vec<(String, String)>,

    /// Sign a JWT per service URL with this private key (PKCS#8 PEM: EC, RSA or Ed25519)
    #[arg(long, value_name = "PEM_FILE", value_parser = flags::read_file)]
    jwt_key: Option<FileBytes>,

    /// Issuer (`iss` and `sub`) of the --jwt-key tokens
    #[arg(
        long,
        value_name = "ISSUER",
        default_value = "greeter-client",
        requires = "jwt_key"
    )]
    jwt_issuer: String,

    /// OAuth 2.0 token endpoint: fetch bearer tokens by the client-credentials grant
    /// (with --client-id, --client-secret)
    #[arg(long, value_name = "URL", requires_all = ["client_id", "client_secret"])]
    oauth2_token_url: Option<String>,

    /// OAuth 2.0 client id (client_secret_basic) for --oauth2-token-url
    #[arg(long, value_name = "ID", requires = "oauth2_token_url")]
    client_id: Option<String>,

    /// OAuth 2.0 client secret for --oauth2-token-url
    #[arg(
        allow_hyphen_values = true,
        long,
        value_name = "SECRET",
        env = "GRPC_AUTH_CLIENT_SECRET",
        hide_env_values = true
    )]
    client_secret: Option<String>,

    /// Scope to ask --oauth2-token-url for (space-separated)
    #[arg(long, value_name = "SCOPE", requires = "oauth2_token_url")]
    scope: Option<String>,

    /// Resource (RFC 8707) to ask --oauth2-token-url a token for; repeatable
    #[arg(long, value_name = "URI", requires = "oauth2_token_url")]
    resource: Vec<String>,

    /// Send the bearer token this file holds, re-read when it changes or nears its exp
    #[arg(long, value_name = "PATH")]
    token_file: Option<std::path::PathBuf>,

    /// Number of calls to make (at least one)
    #[arg(long, value_name = "N", default_value_t = 1)]
    calls: u32,

    /// Allow credentials over a plaintext `http://` connection (loopback or a trusted mesh)
    #[arg(long)]
    insecure_plaintext: bool,
}

/// The Greeter method to call.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Method {
    /// SayHello
    Hello,
    /// SayHelloAdmin
    Admin,
}

/// One credential flag's value.
enum Cred {
    Token(String),
    Basic(String, String),
    Login(String, String),
    ApiKey(String),
    Hmac(String, String),
}

/// `values` of the flag `id`, each with its position on the command line (values from
/// the environment come after those).
fn positioned<T>(m: &ArgMatches, id: &str, values: Vec<T>) -> impl Iterator<Item = (usize, T)> {
    let at: Vec<usize> = m.indices_of(id).map(Iterator::collect).unwrap_or_default();
    values
        .into_iter()
        .enumerate()
        .map(move |(n, v)| (at.get(n).copied().unwrap_or(usize::MAX), v))
}

/// The command line's credentials, in command-line order (`--jwt-key` last).
fn credentials(m: &ArgMatches, cli: &mut Cli) -> Composite {
    let mut creds: Vec<(usize, Cred)> = Vec::new();
    creds.extend(
        positioned(m, "token", std::mem::take(&mut cli.token)).map(|(i, t)| (i, Cred::Token(t))),
    );
    creds.extend(
        positioned(m, "basic", std::mem::take(&mut cli.basic))
            .map(|(i, (u, p))| (i, Cred::Basic(u, p))),
    );
    creds.extend(
        positioned(m, "login", std::mem::take(&mut cli.login))
            .map(|(i, (u, p))| (i, Cred::Login(u, p))),
    );
    creds.extend(
        positioned(m, "api_key", std::mem::take(&mut cli.api_key))
            .map(|(i, k)| (i, Cred::ApiKey(k))),
    );
    creds.extend(
        positioned(m, "hmac", std::mem::take(&mut cli.hmac))
            .map(|(i, (k, s))| (i, Cred::Hmac(k, s))),
    );
    creds.sort_by_key(|(at, _)| *at);
    let mut composite = Composite::new();
    for (_, cred) in creds {
        composite = match cred {
            Cred::Token(t) => composite.with(BearerToken::new(t)),
            Cred::Basic(u, p) => composite.with(BasicCredentials::new(u, p)),
            Cred::Login(u, p) => composite.with(BasicLogin::new(u, p)),
            Cred::ApiKey(k) => composite.with(ApiKeyCredentials::new(k)),
            Cred::Hmac(k, s) => composite.with(HmacSigner::new(k, s)),
        };
    }
    if let Some(url) = &cli.oauth2_token_url {
        composite = oauth2(composite, url, cli);
    }
    if let Some(path) = &cli.token_file {
        composite = composite.with(TokenSourceCredentials::new(FileTokenSource::new(path)));
    }
    if let Some(pem) = &cli.jwt_key {
        let jwt = [Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA]
            .into_iter()
            .find_map(|alg| {
                JwtAccessCredentials::from_pem(alg, &pem.0, cli.jwt_issuer.as_str()).ok()
            })
            .unwrap_or_else(|| {
                Cli::command()
                    .error(
                        ErrorKind::ValueValidation,
                        "--jwt-key: not an EC, RSA or Ed25519 private key (PKCS#8 PEM)",
                    )
                    .exit()
            });
        composite = composite.with(jwt);
    }
    composite
}

/// `--oauth2-token-url`: tokens by the client-credentials grant.
#[cfg(feature = "jwks")]
fn oauth2(composite: Composite, url: &str, cli: &Cli) -> Composite {
    use grpc_auth::credentials::ClientCredentials;
    use grpc_auth::oauth::ClientAuth;
    let auth = ClientAuth::secret_basic(
        cli.client_id.clone().unwrap_or_default(),
        cli.client_secret.clone().unwrap_or_default(),
    );
    let mut source = ClientCredentials::builder(url, auth);
    if let Some(scope) = &cli.scope {
        source = source.scope(scope);
    }
    for r in &cli.resource {
        source = source.resource(r);
    }
    let source = source.build().unwrap_or_else(|e| {
        Cli::command()
            .error(
                ErrorKind::ValueValidation,
                format!("--oauth2-token-url: {e}"),
            )
            .exit()
    });
    composite.with(TokenSourceCredentials::new(source))
}

#[cfg(not(feature = "jwks"))]
fn oauth2(_: Composite, _: &str, _: &Cli) -> Composite {
    Cli::command()
        .error(
            ErrorKind::ArgumentConflict,
            "--oauth2-token-url needs grpc-auth's `jwks` feature",
        )
        .exit()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let creds = credentials(&matches, &mut cli);
    let target = cli.addr;
    let mut endpoint = Endpoint::from(target.clone());
    let mut tls = match &cli.ca {
        Some(ca) => Some(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca.0))),
        None if target.scheme_str() == Some("https") => {
            Some(ClientTlsConfig::new().with_enabled_roots())
        }
        None => None,
    };
    if let (Some(cert), Some(key)) = (&cli.cert, &cli.key) {
        let identity = tonic::transport::Identity::from_pem(&cert.0, &key.0);
        tls = Some(tls.unwrap_or_default().identity(identity));
    }
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls)?;
    }
    let channel = endpoint.connect().await?;
    let mut layer = CredentialsLayer::new(creds, target);
    if cli.insecure_plaintext {
        layer = layer.allow_plaintext();
    }
    let mut client = GreeterClient::new(tower::ServiceBuilder::new().layer(layer).service(channel));
    for _ in 0..cli.calls.max(1) {
        let req = HelloRequest {
            name: cli.name.clone(),
        };
        let res = match cli.method {
            Method::Hello => client.say_hello(req).await,
            Method::Admin => client.say_hello_admin(req).await,
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
