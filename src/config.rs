//! A configuration file (TOML) for the server side: the schemes and their keys, remote
//! key sets, token introspection, shared state and the per-method policy, in one file
//! that a tonic server, the `ext_authz` server and `greeter_server --config FILE` all
//! load (crate feature `config`).
//!
//! ```
//! use grpc_auth::config::AuthConfig;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Relative paths in the file are read from the directory of `origin`, which also
//! // names the file in error messages (`AuthConfig::from_file` reads the file itself).
//! # let origin = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/greeter.toml");
//! let config = AuthConfig::from_toml_str(r#"
//! [mtls]                                   # client certificates the TLS server verified
//! trust_domains = ["prod.example.org"]
//!
//! [tokens]                                 # Basic logins answered with a bearer token
//! audience = "helloworld.Greeter"
//! secret = "a-shared-secret-of-at-least-32-bytes"
//! ttl_secs = 900
//!
//! [jwt]
//! hs256_secret = "a-shared-hs256-secret-of-32-bytes+"  # or { env = "VAR" } or { file = "path" }
//! public_keys = ["rsa_public.pem", { file = "ec256_public.pem", kid = "ec-1" }]
//! issuer = "https://issuer.example"
//! audience = "greeter"
//!
//! [basic]
//! users = { ada = "lovelace", grace = "hopper" }
//! scopes = { ada = ["greeter.admin"] }
//!
//! [api_keys]
//! keys = { billing = "k-123", reports = ["k-old", "k-new"] }   # principal = key(s)
//!
//! [hmac]
//! keys = { "svc-a" = "s3cret-a" }          # key id = secret
//!
//! [policy]
//! public = ["/grpc.health.v1.Health/*"]
//! require_scope = { "/helloworld.Greeter/SayHelloAdmin" = "greeter.admin" }
//! "#, origin)?;
//!
//! let layer = config.layer()?;
//! // tonic::transport::Server::builder().layer(layer).add_service(...), or, with the
//! // feature `ext-authz`, the same checks for Envoy: ExtAuthzServer::new(layer)
//! # let _ = layer; Ok(()) }
//! ```
//!
//! # The file
//!
//! Every table is optional, but at least one scheme must be configured. Unknown keys
//! are refused. A **secret** (a password, a key, a client secret, a Redis URL) is
//! written `"literal"`, `{ env = "VAR" }` (an environment variable) or
//! `{ file = "path" }` (a file's content, one trailing line break removed); an empty
//! one is refused. Paths are relative to the configuration file's directory.
//! Durations are whole seconds. Method patterns are `/package.Service/Method` or
//! `/package.Service/*`.
//!
//! Every key (not all of them together: static and remote JWT keys exclude each other,
//! as do `[tokens] secret` and `[redis]`):
//!
//! ```toml
//! [mtls]                      # the verified client certificate (tonic's TLS server,
//!                             # ServerTlsConfig::client_ca_root) as identity, scheme `mtls`
//! trust_domains = ["prod.example.org"]        # optional rules; none: every verified
//! ids = ["spiffe://ops.example.org/ns/a/sa/b"] # certificate is accepted
//! prefixes = ["spiffe://prod.example.org/ns/billing/"]
//!
//! [tokens]                    # Basic logins answered with `authorization: Bearer` (needs [basic])
//! audience = "helloworld.Greeter"             # required: the issuing service's name
//! secret = { env = "TOKEN_SECRET" }           # HS256, 32 bytes or more, shared by replicas;
//!                                             # default a random key; not with [redis]
//! kid = "k1"                                  # the signing key's id (default "k1")
//! issuer = "grpc-auth"                        # `iss` of the signed tokens (default "grpc-auth")
//! ttl_secs = 900                              # default 15 minutes
//! login_methods = ["/arrow.flight.protocol.FlightService/Handshake"]  # default: every method
//!
//! [jwt]                       # bearer JWTs, scheme `jwt`: static keys, or remote ones
//! hs256_secret = { env = "JWT_SECRET" }       # a secret, 32 bytes or more
//! hs256_kid = "k1"                            # the secret's key id (optional)
//! public_keys = ["rsa.pem", { file = "ec.pem", kid = "ec-1", algorithms = ["ES256"] }]
//!                                             # RSA: RS256 and PS256, EC: ES256 and ES384,
//!                                             # Ed25519: EdDSA, unless `algorithms` says
//! jwks_urls = ["https://idp.example/jwks.json"]   # remote keys (feature `jwks`), their
//!                                             # tokens' issuer is `issuer`
//! oidc_issuers = ["https://login.example.org"]    # keys by OpenID Connect discovery;
//!                                             # several sources are chosen by `iss`
//! issuer = "https://issuer.example"           # `iss` required (static keys, jwks_urls)
//! audience = "greeter"                        # `aud` required (needed with remote keys)
//! any_audience = false                        # with remote keys and no audience: accept all
//! leeway_secs = 60                            # for exp/nbf (default 60)
//!
//! [introspection]             # opaque bearer tokens (RFC 7662, feature `jwks`), after [jwt]
//! url = "https://idp.example/introspect"      # or issuer = "https://idp.example" (discovery)
//! client_id = "greeter"
//! client_secret = { env = "CLIENT_SECRET" }   # a secret
//! client_auth = "client_secret_basic"         # or "client_secret_post"
//! cache_ttl_secs = 30
//! audience = "greeter"                        # `aud` an answer must carry (required)
//! any_audience = false                        # no audience: accept every audience
//! allow_missing_token_type = false            # accept answers without `token_type`
//!
//! [basic]                     # HTTP Basic, scheme `basic`
//! users = { ada = "lovelace", bob = { env = "BOB_HASH" } }  # secrets; `$argon2...`: a PHC hash
//! scopes = { ada = ["greeter.admin"] }        # scopes granted to users
//!
//! [api_keys]                  # scheme `api-key`
//! header = "x-api-key"                        # the metadata key (default x-api-key)
//! keys = { billing = { env = "BILLING_KEY" }, reports = ["k-old", "k-new"] }
//!                                             # principal = a key or a list of keys (secrets)
//!
//! [hmac]                      # HMAC request signatures, scheme `hmac`
//! keys = { "svc-a" = { file = "svc-a.key" } } # key id = secret
//! max_skew_secs = 300
//!
//! [policy]
//! default = "authenticated"                   # or "deny", "public": methods no rule names
//! public = ["/grpc.health.v1.Health/*"]
//! authenticated = ["/helloworld.Greeter/SayHello"]
//! deny = ["/internal.Debug/*"]
//! require_scope = { "/helloworld.Greeter/SayHelloAdmin" = "greeter.admin" }  # or a list: all
//! require_role = { "/ops.Console/*" = ["admin", "ops"] }                      # any of them
//! authorization_policy = "policy.json"        # gRFC A43, checked after the rules above
//!
//! [redis]                     # shared by replicas (feature `redis`): HMAC replay, JWT
//!                             # revocations, failed logins, opaque issued tokens
//! url = { env = "REDIS_URL" }                 # a secret: it may hold a password
//! prefix = "greeter:"                         # default "grpc-auth:"
//! quarantine_secs = 600
//! ```
//!
//! The authenticator is the schemes in this order, composed with
//! [`or`](crate::Authenticator::or) (one credential decides; any other present must be
//! valid too): mtls, tokens (its Basic login), jwt, introspection, basic (when not the
//! tokens' login), api_keys, hmac. With shared state (`[redis]` or
//! [`AuthConfig::with_store`]), Basic counts failed logins there, HMAC remembers
//! signatures there, JWTs are checked against its revocations and `[tokens]` issues
//! opaque tokens kept there (then `secret`, `kid` and `issuer` are not used).
//!
//! # Errors
//!
//! Loading checks everything it can without the network: syntax, unknown keys, types,
//! secrets (variables set, files readable), key files, URLs, method patterns, the
//! authorization policy file, combinations. Each [`ConfigError`] names the file, the
//! line and what is wrong (`/etc/greeter/auth.toml:12: jwt.public_keys: cannot read
//! /etc/greeter/keys/rsa.pem: No such file or directory (os error 2)`), never a secret.
//!
//! # Run time
//!
//! Loading needs neither a tokio runtime nor the network. Remote parts (JWKS, discovery,
//! introspection, Redis) connect on first use; [`AuthConfig::authenticator`] and
//! [`AuthConfig::layer`] need a tokio runtime when the file has `[redis]` (the store
//! is made there), and remote key sets start their refresh task on the first call.
//! The authorization policy file is read once, when loading; to reload it as it changes,
//! give [`AuthConfig::authorization_policy_path`] to a
//! [`PolicyWatcher`](crate::authz::PolicyWatcher) and its policy to
//! [`AuthLayer::authorization_policy`].

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

use crate::authn::hmac::{HmacAuthenticator, HmacVerifier, StaticHmacKeys};
use crate::authn::jwt::{Algorithm, JwtAuthenticator, JwtKey, KeySource, StaticKeys};
#[cfg(feature = "jwks")]
use crate::authn::jwt::{IssuerKeys, JwksKeys};
use crate::authn::revocation::Revocations;
use crate::authn::token_exchange::{
    OpaqueTokens, SignedTokens, StoreTokens, TokenExchange, TokenIssuer, TokenKeys,
};
use crate::authn::{
    ApiKeyAuthenticator, BasicAuthenticator, BoxAuthenticator, MtlsAuthenticator, NoAuthenticator,
};
use crate::authz::AuthorizationPolicy;
use crate::store::{SharedStore, Store};
use crate::{AuthLayer, Authenticator, Policy, Rule, Secret};

/// The most a configuration file may hold: 1 MiB.
const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// The most a secret file or a PEM key file may hold: 64 KiB.
const MAX_FILE_BYTES: u64 = 64 << 10;
/// The most an authorization policy file may hold: 1 MiB (as its watcher reads).
const MAX_POLICY_BYTES: u64 = 1 << 20;

/// A deserializer's message with every string value it quotes (`invalid type: string
/// "ada:lovelace", expected a map`) replaced by `a string`: a table written in a flag's
/// shape (`users = "ada:lovelace"`) must not show its secret.
fn without_strings(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("string \"") {
        out.push_str(rest.get(..at).unwrap_or_default());
        out.push_str("a string");
        let quoted = rest.get(at + "string \"".len()..).unwrap_or_default();
        // The closing quote: the first one not escaped by a backslash.
        let mut escaped = false;
        let end = quoted.char_indices().find_map(|(i, c)| match c {
            '\\' if !escaped => {
                escaped = true;
                None
            }
            '"' if !escaped => Some(i),
            _ => {
                escaped = false;
                None
            }
        });
        rest = match end {
            Some(i) => quoted.get(i + 1..).unwrap_or_default(),
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// Remote key sets and introspection serve many services: without an audience, a token
/// the issuer made for any other one would be accepted here.
#[cfg(feature = "jwks")]
const NO_AUDIENCE_JWT: &str = "jwt: remote keys (jwks_urls, oidc_issuers) need an `audience` \
    (a token the issuer made for another service would be accepted); set \
    `any_audience = true` to accept every audience";
#[cfg(feature = "jwks")]
const NO_AUDIENCE_INTROSPECTION: &str = "introspection: needs an `audience` (a token the \
    provider made for another service would be accepted); set `any_audience = true` to \
    accept every audience";

/// The shapes a secret may take, for messages (never the value).
const SECRET_SHAPE: &str = r#"expected a secret: "literal", { env = "VAR" } or { file = "path" }"#;

// ---------------------------------------------------------------------------
// The error
// ---------------------------------------------------------------------------

/// Why a configuration was refused: the file, the line (when the fault has one) and
/// what is wrong. Shown as `file:line: message` (`file: message` without a line);
/// never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", path.display(), LineSuffix(*line))]
pub struct ConfigError {
    path: PathBuf,
    line: Option<usize>,
    message: String,
}

/// `:line`, or nothing.
struct LineSuffix(Option<usize>);

impl fmt::Display for LineSuffix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(line) => write!(f, ":{line}"),
            None => Ok(()),
        }
    }
}

impl ConfigError {
    fn new(path: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            line,
            message: message.into(),
        }
    }

    /// The configuration file, as given to [`AuthConfig::from_file`] (or the origin
    /// given to [`AuthConfig::from_toml_str`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The line (1-based) the fault is on, when it is on one.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// What is wrong, without the file and line.
    pub fn message(&self) -> &str {
        &self.message
    }
}

// ---------------------------------------------------------------------------
// The file, as written
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a configuration table")]
struct RawConfig {
    mtls: Option<Spanned<RawMtls>>,
    tokens: Option<Spanned<RawTokens>>,
    jwt: Option<Spanned<RawJwt>>,
    introspection: Option<Spanned<RawIntrospection>>,
    basic: Option<Spanned<RawBasic>>,
    api_keys: Option<Spanned<RawApiKeys>>,
    hmac: Option<Spanned<RawHmac>>,
    policy: Option<Spanned<RawPolicy>>,
    redis: Option<Spanned<RawRedis>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [mtls] table")]
struct RawMtls {
    // `None` when absent; an empty list given is refused (it would read as "none allowed"
    // but an [mtls] table without rules accepts every verified certificate).
    trust_domains: Option<Spanned<Vec<Spanned<String>>>>,
    ids: Option<Spanned<Vec<Spanned<String>>>>,
    prefixes: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [tokens] table")]
struct RawTokens {
    audience: Spanned<String>,
    secret: Option<Spanned<SecretValue>>,
    kid: Option<Spanned<String>>,
    issuer: Option<String>,
    ttl_secs: Option<Spanned<u64>>,
    #[serde(default)]
    login_methods: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [jwt] table")]
struct RawJwt {
    hs256_secret: Option<Spanned<SecretValue>>,
    hs256_kid: Option<String>,
    #[serde(default)]
    public_keys: Vec<Spanned<PublicKey>>,
    #[serde(default)]
    jwks_urls: Vec<Spanned<String>>,
    #[serde(default)]
    oidc_issuers: Vec<Spanned<String>>,
    issuer: Option<Spanned<String>>,
    audience: Option<String>,
    #[serde(default)]
    #[cfg_attr(not(feature = "jwks"), allow(dead_code))]
    any_audience: bool,
    leeway_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [introspection] table")]
#[cfg_attr(not(feature = "jwks"), allow(dead_code))]
struct RawIntrospection {
    url: Option<Spanned<String>>,
    issuer: Option<Spanned<String>>,
    client_id: String,
    client_secret: Spanned<SecretValue>,
    #[serde(default)]
    client_auth: ClientAuthMethod,
    cache_ttl_secs: Option<u64>,
    audience: Option<String>,
    #[serde(default)]
    any_audience: bool,
    #[serde(default)]
    allow_missing_token_type: bool,
}

/// How the server authenticates itself at the introspection endpoint.
#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(not(feature = "jwks"), allow(dead_code))]
enum ClientAuthMethod {
    #[default]
    ClientSecretBasic,
    ClientSecretPost,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [basic] table")]
struct RawBasic {
    users: Spanned<BTreeMap<Spanned<String>, Spanned<SecretValue>>>,
    #[serde(default)]
    scopes: BTreeMap<Spanned<String>, Strings>,
}

/// `[api_keys]`: read by hand, so that an unknown key (likely an API key written where
/// a principal belongs) is refused without being shown.
struct RawApiKeys {
    header: Option<Spanned<String>>,
    keys: Spanned<BTreeMap<Spanned<String>, Spanned<ApiKeyValue>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [hmac] table")]
struct RawHmac {
    keys: Spanned<BTreeMap<Spanned<String>, Spanned<SecretValue>>>,
    max_skew_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [policy] table")]
struct RawPolicy {
    default: Option<DefaultRule>,
    #[serde(default)]
    public: Vec<Spanned<String>>,
    #[serde(default)]
    authenticated: Vec<Spanned<String>>,
    #[serde(default)]
    deny: Vec<Spanned<String>>,
    #[serde(default)]
    require_scope: BTreeMap<Spanned<String>, Spanned<Strings>>,
    #[serde(default)]
    require_role: BTreeMap<Spanned<String>, Spanned<Strings>>,
    authorization_policy: Option<Spanned<String>>,
}

/// The rule for methods no pattern names.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum DefaultRule {
    Authenticated,
    Deny,
    Public,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [redis] table")]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
struct RawRedis {
    url: Spanned<SecretValue>,
    prefix: Option<String>,
    quarantine_secs: Option<u64>,
}

/// A secret as written: the value itself, or where to find it.
enum SecretValue {
    Literal(Secret),
    Env(String),
    File(String),
}

impl<'de> Deserialize<'de> for SecretValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecretVisitor)
    }
}

/// Reads a secret; a wrong shape is refused without showing the value.
struct SecretVisitor;

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = SecretValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SECRET_SHAPE)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<SecretValue, E> {
        Ok(SecretValue::Literal(Secret::from(v)))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<SecretValue, E> {
        Err(E::custom(SECRET_SHAPE))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretValue, E> {
        Err(E::custom(SECRET_SHAPE))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretValue, E> {
        Err(E::custom(SECRET_SHAPE))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<SecretValue, E> {
        Err(E::custom(SECRET_SHAPE))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<SecretValue, A::Error> {
        Err(de::Error::custom(SECRET_SHAPE))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretValue, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            let value = match key.as_str() {
                "env" => SecretValue::Env(map.next_value()?),
                "file" => SecretValue::File(map.next_value()?),
                _ => return Err(de::Error::custom(SECRET_SHAPE)),
            };
            if found.replace(value).is_some() {
                return Err(de::Error::custom(SECRET_SHAPE));
            }
        }
        found.ok_or_else(|| de::Error::custom(SECRET_SHAPE))
    }
}

/// An API key entry: one key, or several for one principal (a rotation).
enum ApiKeyValue {
    One(SecretValue),
    Many(Vec<Spanned<SecretValue>>),
}

impl<'de> Deserialize<'de> for ApiKeyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ApiKeyValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret or a list of secrets")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ApiKeyValue, E> {
                SecretVisitor.visit_str(v).map(ApiKeyValue::One)
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<ApiKeyValue, E> {
                Err(E::custom(SECRET_SHAPE))
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<ApiKeyValue, E> {
                Err(E::custom(SECRET_SHAPE))
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<ApiKeyValue, E> {
                Err(E::custom(SECRET_SHAPE))
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<ApiKeyValue, E> {
                Err(E::custom(SECRET_SHAPE))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ApiKeyValue, A::Error> {
                SecretVisitor.visit_map(map).map(ApiKeyValue::One)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ApiKeyValue, A::Error> {
                let mut all = Vec::new();
                while let Some(v) = seq.next_element()? {
                    all.push(v);
                }
                Ok(ApiKeyValue::Many(all))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for RawApiKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        enum Field {
            Header,
            Keys,
        }
        impl<'de> Deserialize<'de> for Field {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct F;
                impl Visitor<'_> for F {
                    type Value = Field;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("`header` or `keys`")
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                        match v {
                            "header" => Ok(Field::Header),
                            "keys" => Ok(Field::Keys),
                            // Not shown: `"k-123" = "billing"` puts a key here.
                            _ => Err(E::custom(
                                "unknown field (not shown: it may be a key), expected \
                                 `header` or `keys` (keys = { principal = \"key\" })",
                            )),
                        }
                    }
                }
                d.deserialize_identifier(F)
            }
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawApiKeys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an [api_keys] table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawApiKeys, A::Error> {
                let (mut header, mut keys) = (None, None);
                while let Some(field) = map.next_key()? {
                    match field {
                        Field::Header => header = Some(map.next_value()?),
                        Field::Keys => keys = Some(map.next_value()?),
                    }
                }
                Ok(RawApiKeys {
                    header,
                    keys: keys.ok_or_else(|| de::Error::missing_field("keys"))?,
                })
            }
        }
        d.deserialize_struct("api_keys", &["header", "keys"], V)
    }
}

/// A public key: a path, or `{ file, kid, algorithms }`.
struct PublicKey {
    file: String,
    kid: Option<String>,
    algorithms: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicKeyTable {
    file: String,
    kid: Option<String>,
    #[serde(default)]
    algorithms: Vec<String>,
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PublicKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a PEM file's path or { file = "path", kid = "id" }"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PublicKey, E> {
                Ok(PublicKey {
                    file: v.to_owned(),
                    kid: None,
                    algorithms: Vec::new(),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PublicKey, A::Error> {
                let t = PublicKeyTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(PublicKey {
                    file: t.file,
                    kid: t.kid,
                    algorithms: t.algorithms,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A string or a list of strings.
struct Strings(Vec<String>);

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Strings;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Strings, E> {
                Ok(Strings(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strings, A::Error> {
                let mut all = Vec::new();
                while let Some(s) = seq.next_element()? {
                    all.push(s);
                }
                Ok(Strings(all))
            }
        }
        d.deserialize_any(V)
    }
}

/// One OAuth scope (RFC 6749 `scope-token`): not empty, no whitespace. "a b" would be
/// one scope that no token carries, never two.
fn scope_token(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(char::is_whitespace)
}

// ---------------------------------------------------------------------------
// The configuration, checked
// ---------------------------------------------------------------------------

/// A loaded, checked configuration: build the [`layer`](Self::layer) (or its parts)
/// from it. See the [module docs](self) for the file.
///
/// Cheap to clone; clones share the remote key sets and the introspection cache. Its
/// `Debug` shows no secret.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    path: PathBuf,
    mtls: Option<MtlsAuthenticator>,
    tokens: Option<Tokens>,
    jwt: Option<Jwt>,
    #[cfg(feature = "jwks")]
    introspection: Option<crate::authn::IntrospectionAuthenticator>,
    basic: Option<BasicAuthenticator>,
    api_keys: Option<ApiKeyAuthenticator>,
    hmac: Option<HmacVerifier<StaticHmacKeys>>,
    policy: Policy,
    authorization: Option<(PathBuf, AuthorizationPolicy)>,
    #[cfg(feature = "redis")]
    redis: Option<Redis>,
    store: Option<SharedStore>,
}

#[derive(Clone, Debug)]
struct Tokens {
    keys: TokenKeys,
    audience: String,
    issuer: Option<String>,
    ttl: Option<Duration>,
    login_methods: Vec<String>,
}

#[derive(Clone, Debug)]
struct Jwt {
    keys: JwtKeys,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: Option<Duration>,
}

#[derive(Clone, Debug)]
enum JwtKeys {
    Static(StaticKeys),
    #[cfg(feature = "jwks")]
    Remote(JwksKeys),
    #[cfg(feature = "jwks")]
    Issuers(IssuerKeys<JwksKeys>),
}

#[cfg(feature = "redis")]
#[derive(Clone, Debug)]
struct Redis {
    url: Secret,
    prefix: Option<String>,
    quarantine: Option<Duration>,
    line: usize,
}

impl AuthConfig {
    /// Reads and checks the file at `path` (at most 1 MiB of UTF-8 TOML). Relative
    /// paths in it are read from its directory. Needs no tokio runtime and no network.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let bytes = crate::file::read_bounded(path, MAX_CONFIG_BYTES)
            .map_err(|e| ConfigError::new(path, None, format!("cannot read: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            ConfigError::new(path, Some(line_of(e.as_bytes(), at)), "not UTF-8 text")
        })?;
        Self::from_toml_str(&text, path)
    }

    /// Checks the configuration `text`; `origin` names it in errors and its directory
    /// is where relative paths are read from (a file name alone: the current directory).
    pub fn from_toml_str(text: &str, origin: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = origin.as_ref();
        let loader = Loader {
            text,
            path,
            base: path.parent().map(Path::to_owned).unwrap_or_default(),
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| loader.line(&s));
            ConfigError::new(path, line, without_strings(e.message()))
        })?;
        loader.load(raw)
    }

    /// The file this configuration came from (the origin given to
    /// [`from_toml_str`](Self::from_toml_str)).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the state shared with replicas (HMAC replay, revocations, failed logins,
    /// issued tokens) in `store` instead of the file's `[redis]`, which is then not
    /// used: e.g. a store made from the command line.
    pub fn with_store(mut self, store: impl Store) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The authenticator: every configured scheme, composed in the order the
    /// [module docs](self) give. Needs a tokio runtime when the file has `[redis]`.
    pub fn authenticator(&self) -> Result<BoxAuthenticator, ConfigError> {
        let store = self.shared_store()?;
        let mut auth = NoAuthenticator.boxed();
        if let Some(mtls) = &self.mtls {
            auth = auth.or(mtls.clone()).boxed();
        }
        let mut basic = self.basic.clone().map(|b| match &store {
            Some(store) => b.failure_store(store.clone()),
            None => b,
        });
        if let Some(tokens) = &self.tokens {
            // Checked when loading: [tokens] comes with [basic].
            if let Some(login) = basic.take() {
                auth = auth.or(tokens.exchange(login, store.as_ref())).boxed();
            }
        }
        if let Some(jwt) = &self.jwt {
            auth = auth.or(jwt.authenticator(store.as_ref())).boxed();
        }
        #[cfg(feature = "jwks")]
        if let Some(introspection) = &self.introspection {
            auth = auth.or(introspection.clone()).boxed();
        }
        if let Some(basic) = basic {
            auth = auth.or(basic).boxed();
        }
        if let Some(keys) = &self.api_keys {
            auth = auth.or(keys.clone()).boxed();
        }
        if let Some(hmac) = &self.hmac {
            let verifier = match &store {
                Some(store) => hmac.clone().replay_store(store.clone()),
                None => hmac.clone(),
            };
            auth = auth.or(HmacAuthenticator::new(verifier)).boxed();
        }
        Ok(auth)
    }

    /// The per-method policy of `[policy]` (without one: every method needs an
    /// authenticated caller).
    pub fn policy(&self) -> Result<Policy, ConfigError> {
        Ok(self.policy.clone())
    }

    /// The authorization policy file `[policy] authorization_policy` names, as read
    /// when loading.
    pub fn authorization_policy(&self) -> Result<Option<AuthorizationPolicy>, ConfigError> {
        Ok(self.authorization.as_ref().map(|(_, p)| p.clone()))
    }

    /// Where the authorization policy file is (relative paths resolved), to watch it
    /// with a [`PolicyWatcher`](crate::authz::PolicyWatcher).
    pub fn authorization_policy_path(&self) -> Option<&Path> {
        self.authorization.as_ref().map(|(p, _)| p.as_path())
    }

    /// Everything together: the [`authenticator`](Self::authenticator), the
    /// [`policy`](Self::policy) and the [`authorization_policy`](Self::authorization_policy).
    /// Needs a tokio runtime when the file has `[redis]`.
    pub fn layer(&self) -> Result<AuthLayer<BoxAuthenticator>, ConfigError> {
        let layer = AuthLayer::new(self.authenticator()?).policy(self.policy()?);
        Ok(match self.authorization_policy()? {
            Some(p) => layer.authorization_policy(p),
            None => layer,
        })
    }

    /// The store given to [`with_store`](Self::with_store), else the file's `[redis]`.
    fn shared_store(&self) -> Result<Option<SharedStore>, ConfigError> {
        if let Some(store) = &self.store {
            return Ok(Some(store.clone()));
        }
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            return redis.build(&self.path).map(Some);
        }
        Ok(None)
    }
}

#[cfg(feature = "redis")]
impl Redis {
    fn build(&self, path: &Path) -> Result<SharedStore, ConfigError> {
        let err = |m: String| ConfigError::new(path, Some(self.line), m);
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(err(
                "redis: the Redis store needs a tokio runtime: build the authenticator \
                 or the layer inside one"
                    .into(),
            ));
        }
        let url = std::str::from_utf8(self.url.expose())
            .map_err(|_| err("redis.url: not UTF-8".into()))?;
        let mut builder = crate::store::RedisStore::builder(url);
        if let Some(prefix) = &self.prefix {
            builder = builder.prefix(prefix);
        }
        if let Some(q) = self.quarantine {
            builder = builder.data_loss_quarantine(q);
        }
        let store = builder.build().map_err(|e| err(format!("redis: {e}")))?;
        Ok(Arc::new(store))
    }
}

impl Tokens {
    fn exchange(&self, login: BasicAuthenticator, store: Option<&SharedStore>) -> BoxAuthenticator {
        match store {
            Some(store) => {
                // Opaque tokens in the shared store: valid on every replica, revocable,
                // and they outlive a restart.
                let mut tokens = OpaqueTokens::new(StoreTokens::new(store.clone()), &self.audience)
                    .revocations(Revocations::new(store.clone()));
                if let Some(ttl) = self.ttl {
                    tokens = tokens.ttl(ttl);
                }
                self.finish(TokenExchange::new(login, tokens))
            }
            None => {
                let mut tokens = SignedTokens::new(self.keys.clone(), &self.audience);
                if let Some(iss) = &self.issuer {
                    tokens = tokens.issuer(iss);
                }
                if let Some(ttl) = self.ttl {
                    tokens = tokens.ttl(ttl);
                }
                self.finish(TokenExchange::new(login, tokens))
            }
        }
    }

    fn finish<T: TokenIssuer>(
        &self,
        mut ex: TokenExchange<BasicAuthenticator, T>,
    ) -> BoxAuthenticator {
        for m in &self.login_methods {
            ex = ex.login_method(m);
        }
        ex.boxed()
    }
}

impl Jwt {
    fn authenticator(&self, store: Option<&SharedStore>) -> BoxAuthenticator {
        match &self.keys {
            JwtKeys::Static(keys) => self.finish(JwtAuthenticator::new(keys.clone()), store),
            #[cfg(feature = "jwks")]
            JwtKeys::Remote(keys) => self.finish(JwtAuthenticator::new(keys.clone()), store),
            #[cfg(feature = "jwks")]
            JwtKeys::Issuers(keys) => self.finish(JwtAuthenticator::new(keys.clone()), store),
        }
    }

    fn finish<K: KeySource>(
        &self,
        mut jwt: JwtAuthenticator<K>,
        store: Option<&SharedStore>,
    ) -> BoxAuthenticator {
        if let Some(iss) = &self.issuer {
            jwt = jwt.issuer(iss);
        }
        if let Some(aud) = &self.audience {
            jwt = jwt.audience(aud);
        }
        if let Some(leeway) = self.leeway {
            jwt = jwt.leeway(leeway);
        }
        if let Some(store) = store {
            jwt = jwt.revocations(Revocations::new(store.clone()));
        }
        jwt.boxed()
    }
}

// ---------------------------------------------------------------------------
// Checking
// ---------------------------------------------------------------------------

/// The 1-based line of byte `offset`.
fn line_of(text: &[u8], offset: usize) -> usize {
    text.iter().take(offset).filter(|&&b| b == b'\n').count() + 1
}

/// A duration of `secs` seconds.
fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// Whether `p` is `/package.Service/Method`, or, when `wildcard`, also
/// `/package.Service/*`.
fn is_method_pattern(p: &str, wildcard: bool) -> bool {
    let Some((service, method)) = p.strip_prefix('/').and_then(|r| r.split_once('/')) else {
        return false;
    };
    let plain = |s: &str| {
        !s.is_empty()
            && !s
                .chars()
                // `?` and `#` never reach the policy (a method path has no query or
                // fragment): a pattern holding one could never match.
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '*' | '?' | '#'))
    };
    plain(service) && (plain(method) || (wildcard && method == "*"))
}

struct Loader<'a> {
    text: &'a str,
    path: &'a Path,
    base: PathBuf,
}

impl Loader<'_> {
    fn line(&self, span: &Range<usize>) -> usize {
        line_of(self.text.as_bytes(), span.start)
    }

    fn err<T>(&self, span: Range<usize>, message: impl Into<String>) -> Result<T, ConfigError> {
        Err(ConfigError::new(self.path, Some(self.line(&span)), message))
    }

    fn resolve(&self, path: &str) -> PathBuf {
        self.base.join(path)
    }

    /// Reads a file `key` names (at most `max` bytes): its resolved path and bytes.
    fn read(
        &self,
        key: &str,
        span: Range<usize>,
        file: &str,
        max: u64,
    ) -> Result<(PathBuf, Vec<u8>), ConfigError> {
        let path = self.resolve(file);
        match crate::file::read_bounded(&path, max) {
            Ok(bytes) => Ok((path, bytes)),
            Err(e) => self.err(span, format!("{key}: cannot read {}: {e}", path.display())),
        }
    }

    /// The secret `key` names, from wherever it is.
    fn secret(&self, key: &str, value: &Spanned<SecretValue>) -> Result<Secret, ConfigError> {
        let span = value.span();
        let secret = match value.get_ref() {
            SecretValue::Literal(s) => s.clone(),
            SecretValue::Env(var) => match std::env::var_os(var) {
                None => {
                    return self.err(
                        span,
                        format!("{key}: environment variable {var} is not set"),
                    );
                }
                Some(v) => match v.into_string() {
                    Ok(v) => Secret::from(v),
                    Err(_) => {
                        return self.err(
                            span,
                            format!("{key}: environment variable {var} is not UTF-8"),
                        );
                    }
                },
            },
            SecretValue::File(file) => {
                let (_, mut bytes) = self.read(key, span.clone(), file, MAX_FILE_BYTES)?;
                if bytes.last() == Some(&b'\n') {
                    bytes.pop();
                    if bytes.last() == Some(&b'\r') {
                        bytes.pop();
                    }
                }
                Secret::new(bytes)
            }
        };
        if secret.is_empty() {
            let whence = match value.get_ref() {
                SecretValue::Literal(_) => String::new(),
                SecretValue::Env(var) => format!(" (environment variable {var})"),
                SecretValue::File(file) => format!(" (file {})", self.resolve(file).display()),
            };
            return self.err(span, format!("{key}: the secret is empty{whence}"));
        }
        Ok(secret)
    }

    fn load(&self, raw: RawConfig) -> Result<AuthConfig, ConfigError> {
        let any_scheme = raw.mtls.is_some()
            || raw.tokens.is_some()
            || raw.jwt.is_some()
            || raw.introspection.is_some()
            || raw.basic.is_some()
            || raw.api_keys.is_some()
            || raw.hmac.is_some();
        if !any_scheme {
            return Err(ConfigError::new(
                self.path,
                None,
                "no authentication scheme: configure at least one of [mtls], [tokens], \
                 [jwt], [introspection], [basic], [api_keys], [hmac]",
            ));
        }
        #[cfg(not(feature = "redis"))]
        if let Some(r) = &raw.redis {
            return self.err(r.span(), "redis: needs grpc-auth's `redis` feature");
        }
        #[cfg(not(feature = "jwks"))]
        if let Some(i) = &raw.introspection {
            return self.err(i.span(), "introspection: needs grpc-auth's `jwks` feature");
        }
        if let (Some(tokens), None) = (&raw.tokens, &raw.basic) {
            return self.err(
                tokens.span(),
                "tokens: issuing tokens needs [basic] users to log in",
            );
        }
        if let (Some(tokens), Some(_)) = (&raw.tokens, &raw.redis)
            && let Some(secret) = &tokens.get_ref().secret
        {
            return self.err(
                secret.span(),
                "tokens.secret: not used with [redis] (tokens are then opaque and kept in \
                 Redis): remove it",
            );
        }
        let authorization = raw
            .policy
            .as_ref()
            .and_then(|p| p.get_ref().authorization_policy.as_ref());
        Ok(AuthConfig {
            path: self.path.to_owned(),
            mtls: raw.mtls.map(|m| self.mtls(m)).transpose()?,
            tokens: raw.tokens.map(|t| self.tokens(t)).transpose()?,
            jwt: raw.jwt.map(|j| self.jwt(j)).transpose()?,
            #[cfg(feature = "jwks")]
            introspection: raw
                .introspection
                .map(|i| self.introspection(i))
                .transpose()?,
            basic: raw.basic.map(|b| self.basic(b)).transpose()?,
            api_keys: raw.api_keys.map(|k| self.api_keys(k)).transpose()?,
            hmac: raw.hmac.map(|h| self.hmac(h)).transpose()?,
            policy: self.policy(raw.policy.as_ref())?,
            authorization: authorization.map(|p| self.authorization(p)).transpose()?,
            #[cfg(feature = "redis")]
            redis: raw.redis.map(|r| self.redis(r)).transpose()?,
            store: None,
        })
    }

    fn mtls(&self, raw: Spanned<RawMtls>) -> Result<MtlsAuthenticator, ConfigError> {
        let raw = raw.into_inner();
        let mut mtls = MtlsAuthenticator::new();
        for (key, list) in [
            ("mtls.trust_domains", &raw.trust_domains),
            ("mtls.ids", &raw.ids),
            ("mtls.prefixes", &raw.prefixes),
        ] {
            let Some(list) = list else { continue };
            if list.get_ref().is_empty() {
                return self.err(
                    list.span(),
                    format!(
                        "{key}: an empty list (leave it out: an [mtls] table without rules \
                         accepts every certificate the TLS server verified)"
                    ),
                );
            }
            for v in list.get_ref() {
                if v.get_ref().trim().is_empty() {
                    return self.err(v.span(), format!("{key}: an entry is empty"));
                }
            }
        }
        let entries = |list: Option<Spanned<Vec<Spanned<String>>>>| {
            list.map(Spanned::into_inner)
                .unwrap_or_default()
                .into_iter()
                .map(Spanned::into_inner)
        };
        for d in entries(raw.trust_domains) {
            mtls = mtls.trust_domain(d);
        }
        for id in entries(raw.ids) {
            mtls = mtls.id(id);
        }
        for p in entries(raw.prefixes) {
            mtls = mtls.prefix(p);
        }
        Ok(mtls)
    }

    fn tokens(&self, raw: Spanned<RawTokens>) -> Result<Tokens, ConfigError> {
        let raw = raw.into_inner();
        if raw.audience.get_ref().is_empty() {
            return self.err(raw.audience.span(), "tokens.audience: empty");
        }
        let kid = raw
            .kid
            .as_ref()
            .map_or("k1", |k| k.get_ref().as_str())
            .to_owned();
        if let Some(k) = raw.kid.as_ref().filter(|k| k.get_ref().is_empty()) {
            return self.err(k.span(), "tokens.kid: empty");
        }
        let keys = match &raw.secret {
            Some(s) => {
                let secret = self.secret("tokens.secret", s)?;
                TokenKeys::hs256(kid, secret)
                    .or_else(|e| self.err(s.span(), format!("tokens.secret: {e}")))?
            }
            None => {
                let mut secret = zeroize::Zeroizing::new([0u8; 32]);
                getrandom::fill(secret.as_mut_slice()).or_else(|e| {
                    self.err(
                        raw.audience.span(),
                        format!("tokens: no random token key: {e}"),
                    )
                })?;
                TokenKeys::hs256(kid, secret.as_slice())
                    .or_else(|e| self.err(raw.audience.span(), format!("tokens: {e}")))?
            }
        };
        let ttl = match &raw.ttl_secs {
            Some(t) if *t.get_ref() == 0 => {
                return self.err(t.span(), "tokens.ttl_secs: must be more than zero");
            }
            t => t.as_ref().map(|t| secs(*t.get_ref())),
        };
        for m in &raw.login_methods {
            if !is_method_pattern(m.get_ref(), false) {
                return self.err(
                    m.span(),
                    format!(
                        "tokens.login_methods: {:?} is not a method path \
                         (`/package.Service/Method`)",
                        m.get_ref()
                    ),
                );
            }
        }
        Ok(Tokens {
            keys,
            audience: raw.audience.into_inner(),
            issuer: raw.issuer,
            ttl,
            login_methods: raw
                .login_methods
                .into_iter()
                .map(Spanned::into_inner)
                .collect(),
        })
    }

    fn jwt(&self, raw: Spanned<RawJwt>) -> Result<Jwt, ConfigError> {
        let table = raw.span();
        let raw = raw.into_inner();
        let has_static = raw.hs256_secret.is_some() || !raw.public_keys.is_empty();
        let remote = match (raw.jwks_urls.first(), raw.oidc_issuers.first()) {
            (Some(url), _) => Some(("jwt.jwks_urls", url.span())),
            (None, Some(iss)) => Some(("jwt.oidc_issuers", iss.span())),
            (None, None) => None,
        };
        match remote {
            Some((key, span)) if has_static => {
                return self.err(
                    span,
                    format!(
                        "{key}: remote keys cannot be combined with static keys \
                         (hs256_secret, public_keys)"
                    ),
                );
            }
            #[cfg(not(feature = "jwks"))]
            Some((key, span)) => {
                return self.err(
                    span,
                    format!("{key}: remote keys need grpc-auth's `jwks` feature"),
                );
            }
            #[cfg(feature = "jwks")]
            Some(_) => {
                if let Some(iss) = &raw.issuer
                    && raw.jwks_urls.is_empty()
                {
                    return self.err(
                        iss.span(),
                        "jwt.issuer: not used with oidc_issuers alone (each is its own \
                         issuer): remove it",
                    );
                }
                let unbounded = raw.audience.is_none() && !raw.any_audience;
                let jwt = self.remote_jwt(raw)?;
                if unbounded {
                    return self.err(table, NO_AUDIENCE_JWT);
                }
                return Ok(jwt);
            }
            None if !has_static => {
                return self.err(
                    table,
                    "jwt: no keys: set hs256_secret, public_keys, jwks_urls or oidc_issuers",
                );
            }
            None => {}
        }
        Ok(Jwt {
            keys: JwtKeys::Static(self.static_keys(&raw)?),
            issuer: raw.issuer.map(Spanned::into_inner),
            audience: raw.audience,
            leeway: raw.leeway_secs.map(secs),
        })
    }

    fn static_keys(&self, raw: &RawJwt) -> Result<StaticKeys, ConfigError> {
        let mut keys = StaticKeys::new();
        if let Some(s) = &raw.hs256_secret {
            let secret = self.secret("jwt.hs256_secret", s)?;
            // RFC 7518 3.2: an HS256 key of at least 256 bits; a shorter one can be found
            // offline from any one token, and then every token forged.
            if secret.expose().len() < 32 {
                return self.err(
                    s.span(),
                    "jwt.hs256_secret: shorter than 32 bytes (RFC 7518 requires 256 bits)",
                );
            }
            let mut key = JwtKey::secret(Algorithm::HS256, secret.expose())
                .or_else(|e| self.err(s.span(), format!("jwt.hs256_secret: {e}")))?;
            if let Some(kid) = &raw.hs256_kid {
                key = key.with_kid(kid);
            }
            keys = keys.with(key);
        }
        for pk in &raw.public_keys {
            let key = "jwt.public_keys";
            let entry = pk.get_ref();
            let (path, pem) = self.read(key, pk.span(), &entry.file, MAX_FILE_BYTES)?;
            let mut algs = Vec::new();
            for a in &entry.algorithms {
                match a.parse::<Algorithm>() {
                    Ok(alg) => algs.push(alg),
                    Err(_) => {
                        return self.err(pk.span(), format!("{key}: unknown algorithm {a:?}"));
                    }
                }
            }
            let mut jwt_key = pem_key(&pem, &algs)
                .or_else(|e| self.err(pk.span(), format!("{key}: {}: {e}", path.display())))?;
            if let Some(kid) = &entry.kid {
                jwt_key = jwt_key.with_kid(kid);
            }
            keys = keys.with(jwt_key);
        }
        Ok(keys)
    }

    #[cfg(feature = "jwks")]
    fn remote_jwt(&self, raw: RawJwt) -> Result<Jwt, ConfigError> {
        let mut sources: Vec<(Option<String>, JwksKeys, Range<usize>, &str)> = Vec::new();
        for url in &raw.jwks_urls {
            let keys = JwksKeys::builder(url.get_ref())
                .build()
                .or_else(|e| self.err(url.span(), format!("jwt.jwks_urls: {e}")))?;
            let iss = raw.issuer.as_ref().map(|i| i.get_ref().clone());
            sources.push((iss, keys, url.span(), "jwt.jwks_urls"));
        }
        for iss in &raw.oidc_issuers {
            let keys = JwksKeys::builder_for_issuer(iss.get_ref())
                .build()
                .or_else(|e| self.err(iss.span(), format!("jwt.oidc_issuers: {e}")))?;
            sources.push((
                Some(iss.get_ref().clone()),
                keys,
                iss.span(),
                "jwt.oidc_issuers",
            ));
        }
        let finish = |keys, issuer| Jwt {
            keys,
            issuer,
            audience: raw.audience.clone(),
            leeway: raw.leeway_secs.map(secs),
        };
        if sources.len() == 1
            && let Some((iss, keys, _, _)) = sources.pop()
        {
            return Ok(finish(JwtKeys::Remote(keys), iss));
        }
        let mut by_issuer = IssuerKeys::new();
        for (iss, keys, span, key) in sources {
            let Some(iss) = iss else {
                return self.err(
                    span,
                    "jwt.jwks_urls: with several key sources, the tokens' issuer must be \
                     known: set jwt.issuer",
                );
            };
            if by_issuer.get(&iss).is_some() {
                return self.err(span, format!("{key}: a second key source for issuer {iss}"));
            }
            by_issuer = by_issuer.issuer(iss, keys);
        }
        // Routed by `iss`: each source is its issuer's.
        Ok(finish(JwtKeys::Issuers(by_issuer), None))
    }

    #[cfg(feature = "jwks")]
    fn introspection(
        &self,
        raw: Spanned<RawIntrospection>,
    ) -> Result<crate::authn::IntrospectionAuthenticator, ConfigError> {
        use crate::authn::IntrospectionAuthenticator;
        use crate::oauth::ClientAuth;
        let table = raw.span();
        let raw = raw.into_inner();
        let secret = self.secret("introspection.client_secret", &raw.client_secret)?;
        if raw.client_id.is_empty() {
            return self.err(table, "introspection.client_id: empty");
        }
        let auth = match raw.client_auth {
            ClientAuthMethod::ClientSecretBasic => ClientAuth::secret_basic(raw.client_id, secret),
            ClientAuthMethod::ClientSecretPost => ClientAuth::secret_post(raw.client_id, secret),
        };
        let (mut builder, span) = match (&raw.url, &raw.issuer) {
            (Some(_), Some(iss)) => {
                return self.err(
                    iss.span(),
                    "introspection: give `url` or `issuer` (discovery), not both",
                );
            }
            (None, None) => {
                return self.err(
                    table,
                    "introspection: give `url`, or `issuer` to find it by discovery",
                );
            }
            (Some(url), None) => (
                IntrospectionAuthenticator::builder(url.get_ref(), auth),
                url.span(),
            ),
            (None, Some(iss)) => (
                IntrospectionAuthenticator::builder_for_issuer(iss.get_ref(), auth),
                iss.span(),
            ),
        };
        let unbounded = raw.audience.is_none() && !raw.any_audience;
        if let Some(ttl) = raw.cache_ttl_secs {
            builder = builder.cache_ttl(secs(ttl));
        }
        if let Some(aud) = raw.audience {
            builder = builder.audience(aud);
        }
        if raw.allow_missing_token_type {
            builder = builder.allow_missing_token_type();
        }
        let built = builder
            .build()
            .or_else(|e| self.err(span, format!("introspection: {e}")))?;
        if unbounded {
            return self.err(table, NO_AUDIENCE_INTROSPECTION);
        }
        Ok(built)
    }

    fn basic(&self, raw: Spanned<RawBasic>) -> Result<BasicAuthenticator, ConfigError> {
        let raw = raw.into_inner();
        if raw.users.get_ref().is_empty() {
            return self.err(raw.users.span(), "basic.users: no users");
        }
        let mut basic = BasicAuthenticator::new();
        for (name, password) in raw.users.get_ref() {
            let user = name.get_ref();
            if user.is_empty() || user.contains(':') {
                return self.err(
                    name.span(),
                    "basic.users: a user name cannot be empty or contain `:`",
                );
            }
            let key = format!("basic.users.{user}");
            let secret = self.secret(&key, password)?;
            basic = if secret.expose().starts_with(b"$argon2") {
                let phc = std::str::from_utf8(secret.expose())
                    .or_else(|_| self.err(password.span(), format!("{key}: not UTF-8")))?;
                basic
                    .hashed_user(user, phc)
                    .or_else(|e| self.err(password.span(), format!("{key}: {e}")))?
            } else {
                basic.user(user, secret)
            };
        }
        for (name, scopes) in &raw.scopes {
            if !raw.users.get_ref().contains_key(name.get_ref().as_str()) {
                return self.err(
                    name.span(),
                    format!("basic.scopes: {:?} is not in basic.users", name.get_ref()),
                );
            }
            if !scopes.0.iter().all(|s| scope_token(s)) {
                return self.err(
                    name.span(),
                    format!(
                        "basic.scopes: {:?}: a scope is empty or holds whitespace (a list \
                         names several: [\"a\", \"b\"])",
                        name.get_ref()
                    ),
                );
            }
            basic = basic.grant(name.get_ref(), scopes.0.iter().cloned());
        }
        Ok(basic)
    }

    fn api_keys(&self, raw: Spanned<RawApiKeys>) -> Result<ApiKeyAuthenticator, ConfigError> {
        let raw = raw.into_inner();
        let mut auth = ApiKeyAuthenticator::new();
        if let Some(h) = &raw.header {
            let name = HeaderName::from_bytes(h.get_ref().as_bytes()).or_else(|_| {
                self.err(
                    h.span(),
                    format!("api_keys.header: {:?} is not a metadata key", h.get_ref()),
                )
            })?;
            auth = auth.header(name);
        }
        if raw.keys.get_ref().is_empty() {
            return self.err(raw.keys.span(), "api_keys.keys: no keys");
        }
        let mut seen: Vec<(Secret, &str)> = Vec::new();
        for (principal, value) in raw.keys.get_ref() {
            let who = principal.get_ref();
            if who.is_empty() {
                return self.err(principal.span(), "api_keys.keys: a principal is empty");
            }
            let key = format!("api_keys.keys.{who}");
            let entries: Vec<Spanned<&SecretValue>> = match value.get_ref() {
                ApiKeyValue::One(v) => vec![Spanned::new(value.span(), v)],
                ApiKeyValue::Many(all) if all.is_empty() => {
                    return self.err(value.span(), format!("{key}: no keys"));
                }
                ApiKeyValue::Many(all) => all
                    .iter()
                    .map(|v| Spanned::new(v.span(), v.get_ref()))
                    .collect(),
            };
            for entry in entries {
                let span = entry.span();
                let secret = self.secret_ref(&key, entry)?;
                if let Some((_, other)) = seen.iter().find(|(s, _)| *s == secret) {
                    return self.err(
                        span,
                        format!("{key}: the same key is already given for {other:?}"),
                    );
                }
                auth = auth.key(secret.expose(), who);
                seen.push((secret, who));
            }
        }
        Ok(auth)
    }

    /// [`secret`](Self::secret) of a borrowed value.
    fn secret_ref(&self, key: &str, value: Spanned<&SecretValue>) -> Result<Secret, ConfigError> {
        let span = value.span();
        let owned = match value.into_inner() {
            SecretValue::Literal(s) => SecretValue::Literal(s.clone()),
            SecretValue::Env(v) => SecretValue::Env(v.clone()),
            SecretValue::File(f) => SecretValue::File(f.clone()),
        };
        self.secret(key, &Spanned::new(span, owned))
    }

    fn hmac(&self, raw: Spanned<RawHmac>) -> Result<HmacVerifier<StaticHmacKeys>, ConfigError> {
        let raw = raw.into_inner();
        if raw.keys.get_ref().is_empty() {
            return self.err(raw.keys.span(), "hmac.keys: no keys");
        }
        let mut keys = StaticHmacKeys::new();
        for (id, secret) in raw.keys.get_ref() {
            if id.get_ref().is_empty() {
                return self.err(id.span(), "hmac.keys: a key id is empty");
            }
            let secret = self.secret(&format!("hmac.keys.{}", id.get_ref()), secret)?;
            keys = keys.key(id.get_ref(), secret);
        }
        let mut verifier = HmacVerifier::new(keys);
        if let Some(skew) = raw.max_skew_secs {
            verifier = verifier.max_skew(secs(skew));
        }
        Ok(verifier)
    }

    fn policy(&self, raw: Option<&Spanned<RawPolicy>>) -> Result<Policy, ConfigError> {
        let Some(raw) = raw.map(Spanned::get_ref) else {
            return Ok(Policy::new());
        };
        let mut policy = Policy::new().default_rule(match raw.default {
            None | Some(DefaultRule::Authenticated) => Rule::Authenticated,
            Some(DefaultRule::Deny) => Rule::Deny,
            Some(DefaultRule::Public) => Rule::Public,
        });
        // Each pattern has one rule: where it was given first (require_scope and
        // require_role combine).
        let mut given: BTreeMap<String, (&str, usize)> = BTreeMap::new();
        let mut check = |list: &'static str, p: &Spanned<String>| {
            if !is_method_pattern(p.get_ref(), true) {
                return self.err(
                    p.span(),
                    format!(
                        "policy.{list}: {:?} is not a method pattern \
                         (`/package.Service/Method` or `/package.Service/*`)",
                        p.get_ref()
                    ),
                );
            }
            let line = self.line(&p.span());
            match given.get(p.get_ref().as_str()) {
                Some((other, _))
                    if list.starts_with("require_") && other.starts_with("require_") =>
                {
                    Ok(())
                }
                Some((other, at)) => self.err(
                    p.span(),
                    format!(
                        "policy.{list}: {:?} already has a rule (policy.{other}, line {at})",
                        p.get_ref()
                    ),
                ),
                None => {
                    given.insert(p.get_ref().clone(), (list, line));
                    Ok(())
                }
            }
        };
        for p in &raw.public {
            check("public", p)?;
            policy = policy.public(p.get_ref());
        }
        for p in &raw.authenticated {
            check("authenticated", p)?;
            policy = policy.authenticated(p.get_ref());
        }
        for p in &raw.deny {
            check("deny", p)?;
            policy = policy.deny(p.get_ref());
        }
        for (list, map) in [
            ("require_scope", &raw.require_scope),
            ("require_role", &raw.require_role),
        ] {
            for (p, values) in map {
                check(list, p)?;
                let values = &values.get_ref().0;
                if values.is_empty() || values.iter().any(String::is_empty) {
                    return self.err(
                        p.span(),
                        format!("policy.{list}: {:?}: an empty name or list", p.get_ref()),
                    );
                }
                // A scope is one RFC 6749 scope-token; a role may hold inner spaces.
                let well_formed = |v: &String| match list {
                    "require_scope" => scope_token(v),
                    _ => v.trim() == v,
                };
                if !values.iter().all(well_formed) {
                    return self.err(
                        p.span(),
                        format!(
                            "policy.{list}: {:?}: a name holds whitespace (a list names \
                             several, all required: [\"a\", \"b\"])",
                            p.get_ref()
                        ),
                    );
                }
                for v in values {
                    policy = match list {
                        "require_scope" => policy.require_scope(p.get_ref(), v),
                        _ => policy.require_role(p.get_ref(), v),
                    };
                }
            }
        }
        Ok(policy)
    }

    fn authorization(
        &self,
        file: &Spanned<String>,
    ) -> Result<(PathBuf, AuthorizationPolicy), ConfigError> {
        let key = "policy.authorization_policy";
        let (path, bytes) = self.read(key, file.span(), file.get_ref(), MAX_POLICY_BYTES)?;
        let text = String::from_utf8(bytes)
            .or_else(|_| self.err(file.span(), format!("{key}: {}: not UTF-8", path.display())))?;
        let policy = AuthorizationPolicy::from_json(&text)
            .or_else(|e| self.err(file.span(), format!("{key}: {}: {e}", path.display())))?;
        Ok((path, policy))
    }

    #[cfg(feature = "redis")]
    fn redis(&self, raw: Spanned<RawRedis>) -> Result<Redis, ConfigError> {
        let line = self.line(&raw.span());
        let raw = raw.into_inner();
        let url = self.secret("redis.url", &raw.url)?;
        let valid = std::str::from_utf8(url.expose())
            .ok()
            .is_some_and(|u| redis::Client::open(u).is_ok());
        if !valid {
            // Not shown: the URL may hold a password.
            return self.err(raw.url.span(), "redis.url: not a valid Redis URL");
        }
        Ok(Redis {
            url,
            prefix: raw.prefix,
            quarantine: raw.quarantine_secs.map(secs),
            line,
        })
    }
}

/// A PEM public key for `algorithms`, or, with none given, for what its type verifies:
/// RSA RS256 and PS256, EC ES256 and ES384 (the curve decides which verifies), Ed25519
/// EdDSA.
fn pem_key(pem: &[u8], algorithms: &[Algorithm]) -> Result<JwtKey, String> {
    if let Some((first, rest)) = algorithms.split_first() {
        let mut key = JwtKey::from_pem(*first, pem).map_err(|e| e.to_string())?;
        for alg in rest {
            key = key.also_allow(*alg).map_err(|e| e.to_string())?;
        }
        return Ok(key);
    }
    let attempts = [
        (Algorithm::RS256, Some(Algorithm::PS256)),
        (Algorithm::ES256, Some(Algorithm::ES384)),
        (Algorithm::EdDSA, None),
    ];
    for (alg, also) in attempts {
        if let Ok(key) = JwtKey::from_pem(alg, pem) {
            return match also {
                Some(also) => key.also_allow(also).map_err(|e| e.to_string()),
                None => Ok(key),
            };
        }
    }
    Err("not a PEM public key (RSA, EC P-256/P-384 or Ed25519)".into())
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use http::HeaderMap;
    use serde_json::json;

    use super::*;
    use crate::authn::{AuthRequest, AuthResult};
    use crate::credentials::HmacSigner;

    const ORIGIN: &str = "greeter.toml";
    const HELLO: &str = "/helloworld.Greeter/SayHello";

    fn run<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn load(text: &str) -> Result<AuthConfig, ConfigError> {
        AuthConfig::from_toml_str(text, ORIGIN)
    }

    /// The refusal of `text`: its line and message.
    fn refused(text: &str) -> (Option<usize>, String) {
        let e = load(text).unwrap_err();
        assert_eq!(e.path(), Path::new(ORIGIN));
        (e.line(), e.message().to_owned())
    }

    fn keys_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys")
    }

    /// A configuration whose relative paths are read from `tests/keys`.
    fn load_in_keys(text: &str) -> Result<AuthConfig, ConfigError> {
        AuthConfig::from_toml_str(text, keys_dir().join("config.toml"))
    }

    /// A directory of its own under the system's temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "grpc-auth-config-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, contents).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    async fn call(auth: &BoxAuthenticator, md: &[(&str, &str)]) -> AuthResult {
        let mut h = HeaderMap::new();
        for (k, v) in md {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        auth.authenticate(&AuthRequest::new(HELLO, &h)).await
    }

    /// The subject and scheme `auth` accepts the call as.
    async fn who(auth: &BoxAuthenticator, md: &[(&str, &str)]) -> (String, String) {
        let got = call(auth, md).await.unwrap().expect("a principal");
        (
            got.principal.subject().to_owned(),
            got.principal.scheme().to_owned(),
        )
    }

    fn pair(subject: &str, scheme: &str) -> (String, String) {
        (subject.to_owned(), scheme.to_owned())
    }

    fn basic(user_pass: &str) -> String {
        format!("Basic {}", STANDARD.encode(user_pass))
    }

    fn hs256(secret: &str, claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn claims(sub: &str, extra: serde_json::Value) -> serde_json::Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut c = json!({
            "sub": sub, "iss": "https://issuer.example", "aud": "greeter",
            "iat": now, "exp": now + 600,
        });
        if let (Some(c), serde_json::Value::Object(extra)) = (c.as_object_mut(), extra) {
            c.extend(extra);
        }
        c
    }

    /// An argon2id PHC string, cheap to verify.
    fn phc(password: &str) -> String {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(64, 1, 1, None).unwrap(),
        )
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
    }

    const EVERY_SCHEME: &str = r#"
[jwt]
hs256_secret = "jwt-s3cret-of-at-least-32-bytes-long"
public_keys = ["rsa_public.pem", { file = "ec256_public.pem", kid = "ec-1" }]
issuer = "https://issuer.example"
audience = "greeter"

[basic]
users = { ada = "lovelace", bob = "PHC" }

[api_keys]
keys = { billing = "k-123", reports = ["k-old", "k-new"] }

[hmac]
keys = { "svc-a" = "s3cret-a" }
"#;

    #[test]
    fn every_scheme_accepts_its_credential() {
        let text = EVERY_SCHEME.replace("PHC", &phc("hopper"));
        let config = load_in_keys(&text).unwrap();
        let auth = config.authenticator().unwrap();
        run(async {
            let token = hs256(
                "jwt-s3cret-of-at-least-32-bytes-long",
                &claims("ada", json!({})),
            );
            let bearer = format!("Bearer {token}");
            assert_eq!(
                who(&auth, &[("authorization", &bearer)]).await,
                pair("ada", "jwt")
            );

            let rsa = std::fs::read(keys_dir().join("rsa_private.pem")).unwrap();
            let token = jsonwebtoken::encode(
                &jsonwebtoken::Header::new(Algorithm::PS256),
                &claims("grace", json!({})),
                &jsonwebtoken::EncodingKey::from_rsa_pem(&rsa).unwrap(),
            )
            .unwrap();
            let bearer = format!("Bearer {token}");
            assert_eq!(
                who(&auth, &[("authorization", &bearer)]).await,
                pair("grace", "jwt")
            );

            let ec = std::fs::read(keys_dir().join("ec256_private.pem")).unwrap();
            let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
            header.kid = Some("ec-1".into());
            let token = jsonwebtoken::encode(
                &header,
                &claims("alan", json!({})),
                &jsonwebtoken::EncodingKey::from_ec_pem(&ec).unwrap(),
            )
            .unwrap();
            let bearer = format!("Bearer {token}");
            assert_eq!(
                who(&auth, &[("authorization", &bearer)]).await,
                pair("alan", "jwt")
            );

            // A token from another issuer is refused, never passed to another scheme.
            let mut other = claims("ada", json!({}));
            other["iss"] = json!("https://other.example");
            let bearer = format!(
                "Bearer {}",
                hs256("jwt-s3cret-of-at-least-32-bytes-long", &other)
            );
            assert_eq!(
                call(&auth, &[("authorization", &bearer)])
                    .await
                    .unwrap_err()
                    .to_string(),
                "invalid token issuer"
            );

            let ada = basic("ada:lovelace");
            assert_eq!(
                who(&auth, &[("authorization", &ada)]).await,
                pair("ada", "basic")
            );
            let bob = basic("bob:hopper");
            assert_eq!(
                who(&auth, &[("authorization", &bob)]).await,
                pair("bob", "basic")
            );
            let wrong = basic("bob:lovelace");
            assert_eq!(
                call(&auth, &[("authorization", &wrong)])
                    .await
                    .unwrap_err()
                    .to_string(),
                "invalid username or password"
            );

            assert_eq!(
                who(&auth, &[("x-api-key", "k-123")]).await,
                pair("billing", "api-key")
            );
            assert_eq!(
                who(&auth, &[("x-api-key", "k-new")]).await,
                pair("reports", "api-key")
            );
            assert_eq!(
                call(&auth, &[("x-api-key", "k-124")])
                    .await
                    .unwrap_err()
                    .to_string(),
                "invalid API key"
            );

            let mut signed = HeaderMap::new();
            HmacSigner::new("svc-a", "s3cret-a")
                .sign(HELLO, &mut signed)
                .unwrap();
            let got = auth
                .authenticate(&AuthRequest::new(HELLO, &signed))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (got.principal.subject(), got.principal.scheme()),
                ("svc-a", "hmac")
            );

            // No credential at all: absent, for the layer to refuse.
            assert!(call(&auth, &[]).await.unwrap().is_none());
        });
    }

    #[test]
    fn a_list_of_api_keys_may_come_from_files() {
        let dir = TempDir::new();
        dir.write("key.txt", b"k-from-file\r\n");
        dir.write(
            "c.toml",
            b"[api_keys]\nkeys = { reports = [\"k-old\", { file = \"key.txt\" }] }\n",
        );
        let config = AuthConfig::from_file(dir.0.join("c.toml")).unwrap();
        let auth = config.authenticator().unwrap();
        run(async {
            for key in ["k-old", "k-from-file"] {
                assert_eq!(
                    who(&auth, &[("x-api-key", key)]).await,
                    pair("reports", "api-key")
                );
            }
        });
    }

    #[test]
    fn secrets_come_from_the_environment_and_from_files_relative_to_the_config() {
        let dir = TempDir::new();
        std::fs::create_dir_all(dir.0.join("secrets")).unwrap();
        dir.write("secrets/hmac", b"s3cret-from-file\n");
        let path = dir.write(
            "auth.toml",
            // Cargo sets CARGO_PKG_NAME for the test process (tests cannot set a
            // variable: `unsafe_code` is forbidden).
            br#"
[basic]
users = { ada = { env = "CARGO_PKG_NAME" } }
[hmac]
keys = { "svc-a" = { file = "secrets/hmac" } }
"#,
        );
        let config = AuthConfig::from_file(&path).unwrap();
        assert_eq!(config.path(), path);
        let auth = config.authenticator().unwrap();
        run(async {
            let ada = basic(&format!("ada:{}", env!("CARGO_PKG_NAME")));
            assert_eq!(
                who(&auth, &[("authorization", &ada)]).await,
                pair("ada", "basic")
            );
            let mut signed = HeaderMap::new();
            HmacSigner::new("svc-a", "s3cret-from-file")
                .sign(HELLO, &mut signed)
                .unwrap();
            let got = auth
                .authenticate(&AuthRequest::new(HELLO, &signed))
                .await
                .unwrap();
            assert_eq!(got.unwrap().principal.subject(), "svc-a");
        });
    }

    #[test]
    fn tokens_are_issued_for_a_basic_login_and_accepted() {
        let config = load(
            r#"
[tokens]
audience = "helloworld.Greeter"
secret = "a-shared-secret-of-at-least-32-bytes"
ttl_secs = 60
[basic]
users = { ada = "lovelace" }
scopes = { ada = ["greeter.admin"] }
"#,
        )
        .unwrap();
        let auth = config.authenticator().unwrap();
        run(async {
            let ada = basic("ada:lovelace");
            let login = call(&auth, &[("authorization", &ada)])
                .await
                .unwrap()
                .unwrap();
            assert_eq!(login.principal.subject(), "ada");
            assert!(login.principal.has_scope("greeter.admin"));
            let bearer = login.response_headers().unwrap()["authorization"]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(bearer.starts_with("Bearer ey"), "a signed token");
            let got = call(&auth, &[("authorization", &bearer)])
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (got.principal.subject(), got.principal.scheme()),
                ("ada", "token")
            );
        });
    }

    #[test]
    fn with_a_store_issued_tokens_are_opaque_and_kept_there() {
        let config = load(
            r#"
[tokens]
audience = "helloworld.Greeter"
[basic]
users = { ada = "lovelace" }
"#,
        )
        .unwrap()
        .with_store(crate::store::MemoryStore::new(1000));
        let auth = config.authenticator().unwrap();
        run(async {
            let ada = basic("ada:lovelace");
            let login = call(&auth, &[("authorization", &ada)])
                .await
                .unwrap()
                .unwrap();
            let bearer = login.response_headers().unwrap()["authorization"]
                .to_str()
                .unwrap()
                .to_owned();
            assert_eq!(
                bearer.matches('.').count(),
                0,
                "opaque, not a JWT: {bearer}"
            );
            let got = call(&auth, &[("authorization", &bearer)])
                .await
                .unwrap()
                .unwrap();
            assert_eq!(got.principal.subject(), "ada");
        });
    }

    #[test]
    fn mtls_rules_are_configured_and_a_call_without_certificate_falls_through() {
        let config = load(
            r#"
[mtls]
trust_domains = ["prod.example.org"]
ids = ["spiffe://ops.example.org/ns/a/sa/b"]
prefixes = ["spiffe://prod.example.org/ns/billing/"]
[api_keys]
keys = { billing = "k-123" }
"#,
        )
        .unwrap();
        assert_eq!(
            format!("{:?}", config.mtls.as_ref().unwrap()),
            r#"MtlsAuthenticator { trust_domains: ["prod.example.org"], ids: ["spiffe://ops.example.org/ns/a/sa/b"], prefixes: ["spiffe://prod.example.org/ns/billing/"] }"#
        );
        let auth = config.authenticator().unwrap();
        run(async {
            assert!(call(&auth, &[]).await.unwrap().is_none());
            assert_eq!(
                who(&auth, &[("x-api-key", "k-123")]).await,
                pair("billing", "api-key")
            );
        });
    }

    #[test]
    fn api_keys_read_the_configured_header() {
        let config =
            load("[api_keys]\nheader = \"x-goog-api-key\"\nkeys = { svc = \"k\" }\n").unwrap();
        let auth = config.authenticator().unwrap();
        run(async {
            assert!(call(&auth, &[("x-api-key", "k")]).await.unwrap().is_none());
            assert_eq!(
                who(&auth, &[("x-goog-api-key", "k")]).await,
                pair("svc", "api-key")
            );
        });
    }

    #[test]
    fn a_pattern_with_a_query_or_fragment_is_refused() {
        for pattern in ["/a.B/C?x=1", "/a.B/C#f", "/a.B?/*"] {
            let (line, msg) = refused(&format!(
                "[api_keys]\nkeys = {{ a = \"k-0123\" }}\n\n[policy]\ndeny = [\"{pattern}\"]\n"
            ));
            assert_eq!(line, Some(5), "{pattern}");
            assert!(msg.starts_with("policy.deny: "), "{pattern}: {msg}");
        }
    }

    #[test]
    fn the_policy_is_built_from_its_lists() {
        let config = load(
            r#"
[api_keys]
keys = { svc = "k" }
[policy]
default = "deny"
public = ["/grpc.health.v1.Health/*"]
authenticated = ["/helloworld.Greeter/SayHello"]
deny = ["/helloworld.Greeter/Internal"]
require_scope = { "/helloworld.Greeter/SayHelloAdmin" = ["greeter.admin", "greeter.read"] }
require_role = { "/helloworld.Greeter/SayHelloAdmin" = "admin", "/ops.Console/*" = ["ops", "sre"] }
"#,
        )
        .unwrap();
        let policy = config.policy().unwrap();
        assert_eq!(
            policy.rule_for("/grpc.health.v1.Health/Check"),
            &Rule::Public
        );
        assert_eq!(policy.rule_for(HELLO), &Rule::Authenticated);
        assert_eq!(policy.rule_for("/helloworld.Greeter/Internal"), &Rule::Deny);
        assert_eq!(policy.rule_for("/other.Service/Method"), &Rule::Deny);
        assert_eq!(
            policy.rule_for("/helloworld.Greeter/SayHelloAdmin"),
            &Rule::Require {
                scopes: vec!["greeter.admin".into(), "greeter.read".into()],
                roles: vec!["admin".into()],
            }
        );
        assert_eq!(
            policy.rule_for("/ops.Console/Restart"),
            &Rule::Require {
                scopes: vec![],
                roles: vec!["ops".into(), "sre".into()],
            }
        );
        assert!(config.authorization_policy().unwrap().is_none());
        // Without [policy]: every method needs an authenticated caller.
        let config = load("[api_keys]\nkeys = { svc = \"k\" }\n").unwrap();
        assert_eq!(
            config.policy().unwrap().rule_for(HELLO),
            &Rule::Authenticated
        );
    }

    const POLICY_JSON: &str = r#"{
  "name": "greeter",
  "allow_rules": [{"name": "billing", "source": {"principals": ["api-key:billing"]}}]
}"#;

    #[test]
    fn the_authorization_policy_file_is_read_relative_to_the_config() {
        let dir = TempDir::new();
        std::fs::create_dir_all(dir.0.join("authz")).unwrap();
        dir.write("authz/policy.json", POLICY_JSON.as_bytes());
        let path = dir.write(
            "auth.toml",
            b"[api_keys]\nkeys = { billing = \"k\" }\n[policy]\nauthorization_policy = \"authz/policy.json\"\n",
        );
        let config = AuthConfig::from_file(&path).unwrap();
        let policy = config.authorization_policy().unwrap().unwrap();
        assert_eq!(policy.name(), "greeter");
        assert_eq!(
            config.authorization_policy_path(),
            Some(dir.0.join("authz/policy.json").as_path())
        );
        let layer = config.layer().unwrap();
        assert!(format!("{layer:?}").contains("greeter"), "{layer:?}");
    }

    #[test]
    fn debug_shows_no_secret() {
        let text = EVERY_SCHEME.replace("PHC", &phc("hopper"));
        let config = load_in_keys(&format!(
            "{text}\n[tokens]\naudience = \"a\"\nsecret = \"token-secret-of-at-least-32-bytes!!\"\n"
        ))
        .unwrap();
        let shown = format!("{config:?} {config:#?}");
        for secret in [
            "jwt-s3cret-of-at-least-32-bytes-long",
            "lovelace",
            "hopper",
            "k-123",
            "k-old",
            "s3cret-a",
            "token-secret",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn every_key_the_module_docs_show_is_one_the_file_takes() {
        let source = include_str!("config.rs");
        let start = source.find("//! ```toml\n").unwrap();
        let block: String = source[start..]
            .lines()
            .skip(1)
            .take_while(|l| *l != "//! ```")
            .map(|l| format!("{}\n", l.trim_start_matches("//!").trim_start_matches(' ')))
            .collect();
        assert!(block.contains("[redis]"), "{block}");
        if let Err(e) = toml::from_str::<RawConfig>(&block) {
            panic!("{e}");
        }
    }

    // --- refusals: each names its line -------------------------------------------

    #[test]
    fn a_syntax_error_names_its_line() {
        assert_eq!(
            refused("[basic]\nusers = { ada = \"lovelace\" }\n\n[jwt\n"),
            (Some(4), "unclosed table, expected `]`".into())
        );
        let e = load("[basic]\nusers = { ada = \"x }\n").unwrap_err();
        assert_eq!(e.line(), Some(2));
        assert_eq!(e.to_string(), format!("{ORIGIN}:2: {}", e.message()));
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert_eq!(
            refused("[basic]\nusers = { ada = \"x\" }\n\n[jwtt]\nissuer = \"x\"\n"),
            (
                Some(4),
                "unknown field `jwtt`, expected one of `mtls`, `tokens`, `jwt`, `introspection`, \
                 `basic`, `api_keys`, `hmac`, `policy`, `redis`"
                    .into()
            )
        );
        assert_eq!(
            refused("[jwt]\nhs256_secret = \"x\"\nissuerr = \"x\"\n"),
            (
                Some(3),
                "unknown field `issuerr`, expected one of `hs256_secret`, `hs256_kid`, \
                 `public_keys`, `jwks_urls`, `oidc_issuers`, `issuer`, `audience`, `any_audience`, `leeway_secs`"
                    .into()
            )
        );
        assert_eq!(
            refused("[jwt]\npublic_keys = [{ file = \"a.pem\", id = \"k\" }]\n").1,
            "unknown field `id`, expected one of `file`, `kid`, `algorithms`"
        );
        assert_eq!(
            refused("[policy]\npublic = []\n[policy.extra]\n"),
            (
                Some(3),
                "unknown field `extra`, expected one of `default`, `public`, `authenticated`, \
                 `deny`, `require_scope`, `require_role`, `authorization_policy`"
                    .into()
            )
        );
    }

    #[test]
    fn an_api_key_where_a_field_belongs_is_refused_without_being_shown() {
        let (line, msg) = refused("[api_keys]\n\"k-secret-123\" = \"billing\"\n");
        assert_eq!(line, Some(2));
        assert_eq!(
            msg,
            "unknown field (not shown: it may be a key), expected `header` or `keys` \
             (keys = { principal = \"key\" })"
        );
        assert_eq!(
            refused("[api_keys]\nheader = \"x-k\"\n"),
            (Some(1), "missing field `keys`".into())
        );
    }

    #[test]
    fn wrong_types_are_refused_and_a_secret_of_the_wrong_shape_is_not_shown() {
        assert_eq!(
            refused("[hmac]\nkeys = { a = \"x\" }\nmax_skew_secs = \"soon\"\n"),
            (Some(3), "invalid type: a string, expected u64".into())
        );
        for value in [
            "123456",
            "12.5",
            "true",
            "[\"x\"]",
            "{ env = \"A\", file = \"b\" }",
            "{ path = \"b\" }",
            "{}",
        ] {
            let (line, msg) = refused(&format!("[basic]\n\nusers = {{ ada = {value} }}\n"));
            assert_eq!((line, msg.as_str()), (Some(3), SECRET_SHAPE), "{value}");
        }
        assert_eq!(
            refused("[api_keys]\nkeys = { a = 42 }\n"),
            (Some(2), SECRET_SHAPE.into())
        );
        assert_eq!(
            refused("[policy]\ndefault = \"maybe\"\n[api_keys]\nkeys = { a = \"k\" }\n"),
            (
                Some(2),
                "unknown variant `maybe`, expected one of `authenticated`, `deny`, `public`".into()
            )
        );
    }

    #[test]
    fn a_missing_environment_variable_names_it() {
        assert_eq!(
            refused(
                "[hmac]\nkeys = { a = \"x\", b = { env = \"GRPC_AUTH_SURELY_UNSET_VARIABLE\" } }\n"
            ),
            (
                Some(2),
                "hmac.keys.b: environment variable GRPC_AUTH_SURELY_UNSET_VARIABLE is not set"
                    .into()
            )
        );
    }

    #[test]
    fn an_unreadable_secret_file_names_the_resolved_path() {
        let dir = TempDir::new();
        let path = dir.write("c.toml", b"[basic]\nusers = { ada = \"x\" }\n\n[jwt]\nhs256_secret = { file = \"missing.key\" }\n");
        let e = AuthConfig::from_file(&path).unwrap_err();
        let missing = dir.0.join("missing.key");
        assert_eq!(
            e.to_string(),
            format!(
                "{}:5: jwt.hs256_secret: cannot read {}: No such file or directory (os error 2)",
                path.display(),
                missing.display()
            )
        );
    }

    #[test]
    fn an_empty_secret_is_refused() {
        assert_eq!(
            refused("[basic]\nusers = { ada = \"\" }\n"),
            (Some(2), "basic.users.ada: the secret is empty".into())
        );
        let dir = TempDir::new();
        dir.write("empty", b"\n");
        let path = dir.write("c.toml", b"[hmac]\nkeys = { a = { file = \"empty\" } }\n");
        let e = AuthConfig::from_file(&path).unwrap_err();
        assert_eq!(e.line(), Some(2));
        assert_eq!(
            e.message(),
            format!(
                "hmac.keys.a: the secret is empty (file {})",
                dir.0.join("empty").display()
            )
        );
    }

    #[test]
    fn a_bad_key_file_is_refused() {
        let e = load_in_keys(
            "[jwt]\nissuer = \"x\"\npublic_keys = [\n  \"rsa_public.pem\",\n  \"README.md\",\n]\n",
        )
        .unwrap_err();
        assert_eq!(e.line(), Some(5));
        assert_eq!(
            e.message(),
            format!(
                "jwt.public_keys: {}: not a PEM public key (RSA, EC P-256/P-384 or Ed25519)",
                keys_dir().join("README.md").display()
            )
        );
        let e = load_in_keys(
            "[jwt]\npublic_keys = [{ file = \"rsa_public.pem\", algorithms = [\"ES256\"] }]\n",
        )
        .unwrap_err();
        assert_eq!(e.line(), Some(2));
        assert!(
            e.message().starts_with("jwt.public_keys: "),
            "{}",
            e.message()
        );
        let e = load_in_keys(
            "[jwt]\npublic_keys = [{ file = \"rsa_public.pem\", algorithms = [\"RS999\"] }]\n",
        )
        .unwrap_err();
        assert_eq!(
            (e.line(), e.message()),
            (Some(2), "jwt.public_keys: unknown algorithm \"RS999\"")
        );
    }

    #[test]
    fn explicit_algorithms_are_the_ones_a_key_verifies() {
        let config = load_in_keys(
            "[jwt]\npublic_keys = [{ file = \"rsa_public.pem\", kid = \"r\", algorithms = [\"RS512\", \"RS256\"] }]\n",
        )
        .unwrap();
        let Some(Jwt {
            keys: JwtKeys::Static(keys),
            ..
        }) = &config.jwt
        else {
            panic!("static keys");
        };
        let shown = format!("{keys:?}");
        assert!(
            shown.contains("RS512") && shown.contains("RS256") && !shown.contains("PS256"),
            "{shown}"
        );
    }

    #[test]
    fn empty_tables_of_credentials_are_refused() {
        assert_eq!(
            refused("[basic]\nusers = {}\n"),
            (Some(2), "basic.users: no users".into())
        );
        assert_eq!(
            refused("[basic.users]\n"),
            (Some(1), "basic.users: no users".into())
        );
        assert_eq!(
            refused("[hmac]\nkeys = {}\n"),
            (Some(2), "hmac.keys: no keys".into())
        );
        assert_eq!(
            refused("[api_keys]\nkeys = {}\n"),
            (Some(2), "api_keys.keys: no keys".into())
        );
        assert_eq!(
            refused("[api_keys]\nkeys = { a = [] }\n"),
            (Some(2), "api_keys.keys.a: no keys".into())
        );
        assert_eq!(
            refused("# a comment\n[jwt]\naudience = \"a\"\n"),
            (
                Some(2),
                "jwt: no keys: set hs256_secret, public_keys, jwks_urls or oidc_issuers".into()
            )
        );
    }

    #[test]
    fn a_file_without_any_scheme_is_refused() {
        let e = load("[policy]\npublic = [\"/a.B/*\"]\n").unwrap_err();
        assert_eq!(e.line(), None);
        assert_eq!(
            e.to_string(),
            "greeter.toml: no authentication scheme: configure at least one of [mtls], \
             [tokens], [jwt], [introspection], [basic], [api_keys], [hmac]"
        );
    }

    #[test]
    fn bad_method_patterns_are_refused() {
        let base = "[api_keys]\nkeys = { a = \"k\" }\n[policy]\n";
        for (pattern, list) in [
            ("helloworld.Greeter/SayHello", "public"),
            ("/helloworld.Greeter", "public"),
            ("/helloworld.Greeter/", "deny"),
            ("/hello*/SayHello", "public"),
            ("/a.B/Say*", "authenticated"),
            ("/a.B/C/D", "public"),
            ("/a.B/C D", "public"),
        ] {
            assert_eq!(
                refused(&format!(
                    "{base}{list} = [\n  \"/ok.Service/*\",\n  {pattern:?},\n]\n"
                )),
                (
                    Some(6),
                    format!(
                        "policy.{list}: {pattern:?} is not a method pattern \
                         (`/package.Service/Method` or `/package.Service/*`)"
                    )
                ),
                "{pattern}"
            );
        }
        assert_eq!(
            refused(&format!("{base}require_scope = {{ \"/a.B\" = \"s\" }}\n")),
            (
                Some(4),
                "policy.require_scope: \"/a.B\" is not a method pattern \
                 (`/package.Service/Method` or `/package.Service/*`)"
                    .into()
            )
        );
        assert_eq!(
            refused(&format!(
                "{base}public = [\"/a.B/*\"]\ndeny = [\"/a.B/*\"]\n"
            )),
            (
                Some(5),
                "policy.deny: \"/a.B/*\" already has a rule (policy.public, line 4)".into()
            )
        );
        assert_eq!(
            refused(&format!("{base}require_scope = {{ \"/a.B/C\" = [] }}\n")),
            (
                Some(4),
                "policy.require_scope: \"/a.B/C\": an empty name or list".into()
            )
        );
        assert_eq!(
            refused(
                "[basic]\nusers = { a = \"b\" }\n[tokens]\naudience = \"x\"\nlogin_methods = [\"/a.B/*\"]\n"
            ),
            (
                Some(5),
                "tokens.login_methods: \"/a.B/*\" is not a method path (`/package.Service/Method`)"
                    .into()
            )
        );
    }

    #[test]
    fn an_invalid_authorization_policy_file_is_refused() {
        let dir = TempDir::new();
        dir.write("policy.json", br#"{"allow_rules": []}"#);
        let path = dir.write(
            "c.toml",
            b"[api_keys]\nkeys = { a = \"k\" }\n\n[policy]\nauthorization_policy = \"policy.json\"\n",
        );
        let e = AuthConfig::from_file(&path).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}:5: policy.authorization_policy: {}: invalid authorization policy: \"name\" is not present",
                path.display(),
                dir.0.join("policy.json").display()
            )
        );
        let path = dir.write(
            "d.toml",
            b"[api_keys]\nkeys = { a = \"k\" }\n[policy]\nauthorization_policy = \"nope.json\"\n",
        );
        let e = AuthConfig::from_file(&path).unwrap_err();
        assert_eq!(e.line(), Some(4));
        assert!(
            e.message()
                .starts_with("policy.authorization_policy: cannot read "),
            "{}",
            e.message()
        );
    }

    #[test]
    fn incompatible_settings_are_refused() {
        assert_eq!(
            refused(
                "[jwt]\nhs256_secret = \"s\"\n\njwks_urls = [\"https://idp.example/jwks.json\"]\n"
            ),
            (
                Some(4),
                "jwt.jwks_urls: remote keys cannot be combined with static keys \
                 (hs256_secret, public_keys)"
                    .into()
            )
        );
        assert_eq!(
            refused("[tokens]\naudience = \"x\"\n"),
            (
                Some(1),
                "tokens: issuing tokens needs [basic] users to log in".into()
            )
        );
        assert_eq!(
            refused(
                "[basic]\nusers = { a = \"b\" }\n[tokens]\naudience = \"x\"\nsecret = \"short\"\n"
            ),
            (
                Some(5),
                "tokens.secret: token signing secret is 5 bytes; at least 32 are needed".into()
            )
        );
        assert_eq!(
            refused("[basic]\nusers = { a = \"b\" }\nscopes = { b = [\"s\"] }\n"),
            (Some(3), "basic.scopes: \"b\" is not in basic.users".into())
        );
        assert_eq!(
            refused("[basic]\nusers = { a = \"$argon2id$v=19$m=8,t=1,p=1$bad\" }\n"),
            (
                Some(2),
                "basic.users.a: invalid password hash: not an argon2 PHC string".into()
            )
        );
        assert_eq!(
            refused("[basic]\nusers = { \"a:b\" = \"c\" }\n"),
            (
                Some(2),
                "basic.users: a user name cannot be empty or contain `:`".into()
            )
        );
        assert_eq!(
            refused("[api_keys]\nkeys = { a = \"same-key\",\n  b = \"same-key\" }\n"),
            (
                Some(3),
                "api_keys.keys.b: the same key is already given for \"a\"".into()
            )
        );
        assert_eq!(
            refused("[api_keys]\nheader = \"x api key\"\nkeys = { a = \"k\" }\n"),
            (
                Some(2),
                "api_keys.header: \"x api key\" is not a metadata key".into()
            )
        );
    }

    #[test]
    fn from_file_names_an_unreadable_or_non_utf8_file() {
        let dir = TempDir::new();
        let missing = dir.0.join("nope.toml");
        let e = AuthConfig::from_file(&missing).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: cannot read: No such file or directory (os error 2)",
                missing.display()
            )
        );
        let path = dir.write("latin1.toml", b"[basic]\nusers = { ada = \"caf\xe9\" }\n");
        let e = AuthConfig::from_file(&path).unwrap_err();
        assert_eq!((e.line(), e.message()), (Some(2), "not UTF-8 text"));
    }

    #[cfg(feature = "jwks")]
    #[test]
    fn remote_keys_are_built_without_the_network_and_routed_by_issuer() {
        let config = load(
            r#"
[jwt]
jwks_urls = ["https://a.example/jwks.json"]
issuer = "https://a.example"
oidc_issuers = ["https://b.example"]
audience = "greeter"
"#,
        )
        .unwrap();
        assert!(matches!(
            config.jwt.as_ref().map(|j| &j.keys),
            Some(JwtKeys::Issuers(_))
        ));
        let auth = config.authenticator().unwrap();
        run(async {
            let mut c = claims("ada", json!({}));
            c["iss"] = json!("https://c.example");
            let bearer = format!("Bearer {}", hs256("x", &c));
            assert_eq!(
                call(&auth, &[("authorization", &bearer)])
                    .await
                    .unwrap_err()
                    .to_string(),
                "unknown token issuer"
            );
        });
        let one =
            load("[jwt]\noidc_issuers = [\"https://b.example\"]\naudience = \"g\"\n").unwrap();
        let jwt = one.jwt.as_ref().unwrap();
        assert!(matches!(jwt.keys, JwtKeys::Remote(_)));
        assert_eq!(jwt.issuer.as_deref(), Some("https://b.example"));
    }

    #[cfg(feature = "jwks")]
    #[test]
    fn remote_key_sources_must_be_told_apart() {
        assert_eq!(
            refused(
                "[jwt]\njwks_urls = [\"https://a.example/jwks.json\"]\noidc_issuers = [\"https://b.example\"]\n"
            ),
            (
                Some(2),
                "jwt.jwks_urls: with several key sources, the tokens' issuer must be known: \
                 set jwt.issuer"
                    .into()
            )
        );
        assert_eq!(
            refused(
                "[jwt]\noidc_issuers = [\n  \"https://b.example\",\n  \"https://b.example\",\n]\n"
            ),
            (
                Some(4),
                "jwt.oidc_issuers: a second key source for issuer https://b.example".into()
            )
        );
        assert_eq!(
            refused(
                "[jwt]\noidc_issuers = [\"https://b.example\"]\nissuer = \"https://b.example\"\n"
            ),
            (
                Some(3),
                "jwt.issuer: not used with oidc_issuers alone (each is its own issuer): remove it"
                    .into()
            )
        );
        let (line, msg) = refused("[jwt]\njwks_urls = [\"ftp://a.example/jwks.json\"]\n");
        assert_eq!(line, Some(2));
        assert!(msg.starts_with("jwt.jwks_urls: "), "{msg}");
        let (line, msg) = refused("[jwt]\n\njwks_urls = [\"http://idp.example/jwks.json\"]\n");
        assert_eq!(line, Some(3));
        assert!(msg.starts_with("jwt.jwks_urls: "), "{msg}");
    }

    #[cfg(feature = "jwks")]
    #[test]
    fn introspection_asks_the_configured_endpoint() {
        run(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                while let Ok((mut conn, _)) = listener.accept().await {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    // The form is small: the request is in once its body arrived.
                    while !String::from_utf8_lossy(&seen).contains("token=") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let request = String::from_utf8_lossy(&seen).to_string();
                    let body = if request.contains("token=opaque-good")
                        && request
                            .to_ascii_lowercase()
                            .contains("authorization: basic")
                    {
                        r#"{"active":true,"sub":"svc-x","scope":"a b","token_type":"Bearer"}"#
                    } else {
                        r#"{"active":false}"#
                    };
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                }
            });
            let config = load(&format!(
                r#"
[introspection]
url = "http://127.0.0.1:{port}/introspect"
client_id = "greeter"
client_secret = "client-s3cret"
cache_ttl_secs = 5
any_audience = true
"#
            ))
            .unwrap();
            let auth = config.authenticator().unwrap();
            let got = call(&auth, &[("authorization", "Bearer opaque-good")])
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (got.principal.subject(), got.principal.scheme()),
                ("svc-x", "introspection")
            );
            assert!(got.principal.has_scope("b"));
            let e = call(&auth, &[("authorization", "Bearer opaque-bad")])
                .await
                .unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unauthenticated);
        });
    }

    #[cfg(feature = "jwks")]
    #[test]
    fn introspection_needs_one_endpoint() {
        let both = "[introspection]\nurl = \"https://idp.example/i\"\nissuer = \"https://idp.example\"\nclient_id = \"c\"\nclient_secret = \"s\"\n";
        assert_eq!(
            refused(both),
            (
                Some(3),
                "introspection: give `url` or `issuer` (discovery), not both".into()
            )
        );
        let neither = "\n[introspection]\nclient_id = \"c\"\nclient_secret = \"s\"\n";
        assert_eq!(
            refused(neither),
            (
                Some(2),
                "introspection: give `url`, or `issuer` to find it by discovery".into()
            )
        );
        let (line, msg) = refused(
            "[introspection]\nclient_id = \"c\"\nclient_secret = \"s\"\nurl = \"not a url\"\n",
        );
        assert_eq!(line, Some(4));
        assert!(
            msg.starts_with("introspection: token introspection: "),
            "{msg}"
        );
        assert_eq!(
            refused("[introspection]\nclient_id = \"c\"\nurl = \"https://idp.example/i\"\n"),
            (Some(1), "missing field `client_secret`".into())
        );
    }

    #[cfg(not(feature = "jwks"))]
    #[test]
    fn remote_parts_without_the_jwks_feature_are_refused() {
        assert_eq!(
            refused("[jwt]\n\noidc_issuers = [\"https://b.example\"]\n"),
            (
                Some(3),
                "jwt.oidc_issuers: remote keys need grpc-auth's `jwks` feature".into()
            )
        );
        assert_eq!(
            refused(
                "[api_keys]\nkeys = { a = \"k\" }\n[introspection]\nurl = \"https://i\"\nclient_id = \"c\"\nclient_secret = \"s\"\n"
            ),
            (
                Some(3),
                "introspection: needs grpc-auth's `jwks` feature".into()
            )
        );
    }

    #[cfg(not(feature = "redis"))]
    #[test]
    fn redis_without_its_feature_is_refused() {
        assert_eq!(
            refused(
                "[api_keys]\nkeys = { a = \"k\" }\n\n[redis]\nurl = \"redis://127.0.0.1:6379\"\n"
            ),
            (Some(4), "redis: needs grpc-auth's `redis` feature".into())
        );
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_is_checked_when_loading_and_built_inside_a_runtime() {
        assert_eq!(
            refused(
                "[api_keys]\nkeys = { a = \"k\" }\n[redis]\nurl = \"mysql://user:hunter2@db\"\n"
            ),
            (Some(4), "redis.url: not a valid Redis URL".into())
        );
        assert_eq!(
            refused(
                "[basic]\nusers = { a = \"b\" }\n[tokens]\naudience = \"x\"\nsecret = \"s\"\n[redis]\nurl = \"redis://127.0.0.1:1\"\n"
            ),
            (
                Some(5),
                "tokens.secret: not used with [redis] (tokens are then opaque and kept in \
                 Redis): remove it"
                    .into()
            )
        );
        let config = load(
            "[api_keys]\nkeys = { a = \"k\" }\n[redis]\nurl = \"redis://:hunter2@127.0.0.1:1\"\nprefix = \"t:\"\n",
        )
        .unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
        let e = config.layer().unwrap_err();
        assert_eq!(
            e.to_string(),
            "greeter.toml:3: redis: the Redis store needs a tokio runtime: build the \
             authenticator or the layer inside one"
        );
        // Inside one: made lazily, no connection yet.
        run(async { config.layer().unwrap() });
    }
}
