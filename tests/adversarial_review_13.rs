//! Thirteenth adversarial review: the twelfth review's fixes. An exchanged token's
//! lifetime, scopes, roles and certificate binding against its login (logins without
//! `exp`, an unreadable `exp`, `scope`/`scp` mixes, a `cnf` that is not an object, opaque
//! tokens shared by replicas); the JWKS provider's failures against known and new `kid`s;
//! a policy given a string that is not a pattern (library, config file, examples); the
//! examples' secret-bearing flags in usage errors.
//!
//! `/// Finding:` tests fail at the commit reviewed and prove a bug; `/// Guard:` tests
//! are attacks the code withstood.
#![cfg(all(feature = "jwks", feature = "ext-authz", feature = "config"))]

#[path = "support/jwks_server.rs"]
mod jwks_server;
#[path = "../examples/support/tls.rs"]
mod tls;
#[path = "../examples/support/tokens.rs"]
mod tokens;

#[path = "support/checks.rs"]
mod checks;
use checks::{
    Example, ask, ask_over, check_request, code_and_message, example_path, issued, thumbprint,
};

use std::io::Read as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use grpc_auth::authn::jwt::{JwksKeys, JwtAuthenticator, JwtKey, StaticKeys};
use grpc_auth::authn::token_exchange::{
    OpaqueTokens, SignedTokens, StoreTokens, TokenExchange, TokenIssuer, TokenKeys,
};
use grpc_auth::clock::{Clock, ManualClock};
use grpc_auth::ext_authz::ExtAuthzServer;
use grpc_auth::store::{MemoryStore, SharedStore};
use grpc_auth::{AuthLayer, Policy, Principal, Rule};
use jsonwebtoken::Algorithm;
use jwks_server::{JwksServer, Mode, ec256, jwks, rsa};
use serde_json::{Value, json};
use tonic::Code;

const HELLO: &str = "/helloworld.Greeter/SayHello";
const ADMIN: &str = "/helloworld.Greeter/SayHelloAdmin";
const GRPC: (&str, &str) = ("content-type", "application/grpc");
const SECRET: &str = "review-13-idp-secret-0123456789abcdef";
const TOKEN_SECRET: &[u8] = b"review-13-token-secret-0123456789abc";
const ISS: &str = "https://issuer.test";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HS256 login JWT over `claims` (signed with `SECRET`).
fn idp_token(claims: &Value) -> String {
    tokens::hs256(SECRET, claims)
}

/// The identity provider's tokens, verified with `SECRET`, reading `clock`.
fn idp(clock: &ManualClock) -> JwtAuthenticator {
    JwtAuthenticator::new(StaticKeys::from(
        JwtKey::secret(Algorithm::HS256, SECRET.as_bytes()).unwrap(),
    ))
    .clock(clock.clone())
}

fn signed(clock: &ManualClock) -> SignedTokens {
    SignedTokens::new(TokenKeys::hs256("k1", TOKEN_SECRET).unwrap(), "greeter").clock(clock.clone())
}

fn text(s: grpc_auth::Secret) -> String {
    String::from_utf8(s.expose().to_vec()).unwrap()
}

fn outcome<T>(r: Result<T, grpc_auth::AuthError>) -> Result<T, (Code, String)> {
    r.map_err(|e| (e.code(), e.to_string()))
}

/// The payload of a JWT, unverified.
fn payload(jwt: &str) -> Value {
    let p = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .unwrap(),
    )
    .unwrap()
}

fn with_claims(p: Principal, claims: Value) -> Principal {
    let Value::Object(map) = claims else {
        panic!("not an object")
    };
    p.with_claims(map)
}

// ---------------------------------------------------------------------------
// Envoy checks, in process
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// The exchange: lifetime, scopes, roles
// ---------------------------------------------------------------------------

/// Guard: a JWT login mixing `scope` ("a b" string, split) and `scp` (array, a
/// whitespace-holding element kept whole) and roles with an inner space gets a signed
/// token with exactly its scopes and roles: it travels as `scp`, nothing splits, and
/// the token fails the scope the login fails.
#[tokio::test]
async fn guard_a_signed_token_keeps_a_scope_and_scp_mix_and_roles_exactly() {
    let clock = ManualClock::now();
    let tokens = signed(&clock);
    let login = idp_token(&json!({
        "sub": "ada",
        "exp": clock.unix_seconds() + 3600,
        "scope": "greeter.read reports",
        "scp": ["greeter.read greeter.admin", "x"],
        "roles": ["on call", "ops"],
    }));
    let principal = idp(&clock).verify(&login).await.unwrap().principal;
    assert_eq!(
        principal.scopes(),
        ["greeter.read", "reports", "greeter.read greeter.admin", "x"]
    );
    let token = tokens.sign(&principal).unwrap();
    let claims = payload(&token);
    assert_eq!(claims.get("scope"), None, "{claims}");
    assert_eq!(
        claims["scp"],
        json!(["greeter.read", "reports", "greeter.read greeter.admin", "x"])
    );
    let exchanged = tokens.verify(&token).await.unwrap();
    assert_eq!(exchanged.scopes(), principal.scopes());
    assert_eq!(exchanged.roles(), ["on call", "ops"]);
    assert!(!exchanged.has_role("on"));
    let policy = Policy::new()
        .require_scope(ADMIN, "greeter.admin")
        .require_role(HELLO, "call");
    for (method, why) in [
        (ADMIN, "missing scope: greeter.admin"),
        (HELLO, "missing role: one of call"),
    ] {
        assert_eq!(
            outcome(policy.rule_for(method).check(&exchanged)),
            Err((Code::PermissionDenied, why.into()))
        );
    }
}

/// Guard: a login with no `exp` at all (Basic, an API key) gets a token bounded by the
/// issuer's TTL, signed or opaque; never one without an end.
#[tokio::test]
async fn guard_a_token_for_a_login_without_exp_lives_only_the_ttl() {
    let clock = ManualClock::now();
    let iat = clock.unix_seconds();
    let tokens = signed(&clock).ttl(Duration::from_secs(60));
    let opaque = OpaqueTokens::new(
        grpc_auth::authn::token_exchange::MemoryTokenStore::default(),
        "greeter",
    )
    .ttl(Duration::from_secs(60))
    .clock(clock.clone());
    let mut issued = Vec::new();
    for p in [
        Principal::new("ada", "basic"),
        Principal::new("billing", "api-key"),
    ] {
        let jwt = tokens.sign(&p).unwrap();
        assert_eq!(payload(&jwt)["exp"], json!(iat + 60));
        let gat = text(opaque.issue(&p).await.unwrap());
        assert_eq!(opaque.verify(&gat).await.unwrap().subject(), p.subject());
        issued.push((jwt, gat));
    }
    // Past the TTL plus the signed tokens' 60 s leeway.
    clock.advance(Duration::from_secs(60 + 61));
    for (jwt, gat) in issued {
        assert_eq!(
            outcome(tokens.verify(&jwt).await).map(|p| p.subject().to_owned()),
            Err((Code::Unauthenticated, "token expired".into()))
        );
        assert_eq!(
            outcome(opaque.verify(&gat).await).map(|p| p.subject().to_owned()),
            Err((Code::Unauthenticated, "token expired".into()))
        );
    }
}

/// Guard: a login whose `exp` cannot be read (a string, a negative number, `null`) is
/// never exchanged: signed and opaque issuers refuse rather than issue a full-TTL token.
#[tokio::test]
async fn guard_a_login_with_an_unreadable_exp_gets_no_token() {
    let clock = ManualClock::now();
    let tokens = signed(&clock);
    let opaque = OpaqueTokens::new(
        grpc_auth::authn::token_exchange::MemoryTokenStore::default(),
        "greeter",
    )
    .clock(clock.clone());
    for exp in [json!("9999999999"), json!(-1), Value::Null, json!([1])] {
        let p = with_claims(Principal::new("ada", "jwt"), json!({ "exp": exp }));
        let refused = Err((
            Code::Unauthenticated,
            "the credential's expiry cannot be read".to_owned(),
        ));
        assert_eq!(outcome(tokens.sign(&p)).map(|_| ()), refused, "{exp}");
        assert_eq!(
            outcome(opaque.issue(&p).await).map(|_| ()),
            refused,
            "{exp}"
        );
    }
    // A huge fractional exp floors and is bounded by the TTL.
    let p = with_claims(Principal::new("ada", "jwt"), json!({ "exp": 1e300 }));
    let jwt = tokens.sign(&p).unwrap();
    assert_eq!(payload(&jwt)["exp"], json!(clock.unix_seconds() + 900));
}

// ---------------------------------------------------------------------------
// The exchange: certificate binding
// ---------------------------------------------------------------------------

/// Guard: a signed token exchanged for a certificate-bound JWT login carries the
/// login's `cnf` and is refused without that certificate or with another one.
#[tokio::test]
async fn guard_a_signed_token_for_a_bound_login_stays_bound() {
    let pki = tls::test_pki();
    let (cert, _) = pki.client_cert(&["spiffe://prod.test/ns/billing/sa/api"], &[], "api");
    let (other, _) = pki.client_cert(&["spiffe://prod.test/ns/evil/sa/x"], &[], "x");
    let clock = ManualClock::now();
    let login = idp_token(&json!({
        "sub": "ada",
        "exp": clock.unix_seconds() + 3600,
        "cnf": { "x5t#S256": thumbprint(&cert) },
    }));
    let server = ExtAuthzServer::new(AuthLayer::new(TokenExchange::new(
        idp(&clock),
        signed(&clock),
    )));
    let jwt = format!("Bearer {login}");
    let r = ask(
        &server,
        check_request(HELLO, &[GRPC, ("authorization", &jwt)], Some(&cert)),
    )
    .await;
    assert_eq!(code_and_message(&r).0, 0, "{r:?}");
    let token = issued(&r).expect("a token issued");
    assert_eq!(
        payload(token.strip_prefix("Bearer ").unwrap())["cnf"],
        json!({ "x5t#S256": thumbprint(&cert) })
    );
    let bearer = [GRPC, ("authorization", token.as_str())];
    let r = ask(&server, check_request(HELLO, &bearer, None)).await;
    assert_eq!(
        code_and_message(&r),
        (
            16,
            "certificate-bound token presented without a client certificate".into()
        )
    );
    let r = ask(&server, check_request(HELLO, &bearer, Some(&other))).await;
    assert_eq!(
        code_and_message(&r),
        (
            16,
            "certificate-bound token presented with another certificate".into()
        )
    );
    let r = ask(&server, check_request(HELLO, &bearer, Some(&cert))).await;
    assert_eq!(code_and_message(&r).0, 0, "{r:?}");
}

/// Guard: a login whose `cnf` is not an object (a string, `null`, an object without
/// `x5t#S256`) is refused at the login, over mTLS or not: no token is issued that could
/// carry a binding nothing checks.
#[tokio::test]
async fn guard_a_login_whose_cnf_is_not_a_certificate_binding_gets_no_token() {
    let pki = tls::test_pki();
    let (cert, _) = pki.client_cert(&["spiffe://prod.test/ns/billing/sa/api"], &[], "api");
    let clock = ManualClock::now();
    let server = ExtAuthzServer::new(AuthLayer::new(TokenExchange::new(
        idp(&clock),
        signed(&clock),
    )));
    for cnf in [
        json!(thumbprint(&cert)),
        Value::Null,
        json!({ "jkt": "abc" }),
        json!([{ "x5t#S256": thumbprint(&cert) }]),
    ] {
        let login = idp_token(&json!({
            "sub": "ada",
            "exp": clock.unix_seconds() + 3600,
            "cnf": cnf,
        }));
        let jwt = format!("Bearer {login}");
        for pem in [None, Some(cert.as_str())] {
            let r = ask(
                &server,
                check_request(HELLO, &[GRPC, ("authorization", &jwt)], pem),
            )
            .await;
            assert_eq!(
                code_and_message(&r),
                (
                    16,
                    "token bound by an unsupported confirmation method".into()
                ),
                "{cnf}"
            );
            assert_eq!(issued(&r), None);
        }
    }
}

/// Guard: opaque tokens in a store replicas share keep the login's binding on every
/// replica: replica B refuses replica A's token without the certificate.
#[tokio::test]
async fn guard_an_opaque_token_in_a_shared_store_stays_bound_on_another_replica() {
    let pki = tls::test_pki();
    let (cert, _) = pki.client_cert(&["spiffe://prod.test/ns/billing/sa/api"], &[], "api");
    let clock = ManualClock::now();
    let store: SharedStore = Arc::new(MemoryStore::new(1_000));
    let replica = || {
        ExtAuthzServer::new(AuthLayer::new(TokenExchange::new(
            idp(&clock),
            OpaqueTokens::new(StoreTokens::new(store.clone()), "greeter").clock(clock.clone()),
        )))
    };
    let (a, b) = (replica(), replica());
    let login = idp_token(&json!({
        "sub": "ada",
        "exp": clock.unix_seconds() + 3600,
        "cnf": { "x5t#S256": thumbprint(&cert) },
    }));
    let jwt = format!("Bearer {login}");
    let r = ask(
        &a,
        check_request(HELLO, &[GRPC, ("authorization", &jwt)], Some(&cert)),
    )
    .await;
    let token = issued(&r).expect("a token issued");
    assert!(token.starts_with("Bearer gat_"), "{token}");
    let bearer = [GRPC, ("authorization", token.as_str())];
    let r = ask(&b, check_request(HELLO, &bearer, None)).await;
    assert_eq!(
        code_and_message(&r),
        (
            16,
            "certificate-bound token presented without a client certificate".into()
        )
    );
    let r = ask(&b, check_request(HELLO, &bearer, Some(&cert))).await;
    assert_eq!(code_and_message(&r).0, 0, "{r:?}");
    // And it ends with the login on replica B too.
    clock.advance(Duration::from_secs(3600));
    let r = ask(&b, check_request(HELLO, &bearer, Some(&cert))).await;
    assert_eq!(code_and_message(&r), (16, "token expired".into()));
}

// ---------------------------------------------------------------------------
// JWKS: the provider's failures against known and new kids
// ---------------------------------------------------------------------------

fn jwks_claims() -> Value {
    json!({ "sub": "ada", "iss": ISS, "exp": unix_now() + 3600 })
}

/// Guard: while the provider is down, a flood of tokens with made-up `kid`s (each
/// UNAVAILABLE) never stops a token with a known `kid` from verifying.
#[tokio::test]
async fn guard_unknown_kids_during_an_outage_never_refuse_a_known_kid() {
    let (a, b) = (rsa("a"), ec256("b"));
    let server = JwksServer::start(jwks(&[&a])).await;
    let clock = ManualClock::now();
    let keys = JwksKeys::builder(server.jwks_url())
        .clock(clock.clone())
        .build()
        .unwrap();
    keys.ready().await.unwrap();
    let auth = JwtAuthenticator::new(keys).issuer(ISS);
    server.set_mode(Mode::Status(503));
    for i in 0..5 {
        let r = auth.verify(&b.sign(&jwks_claims())).await;
        assert_eq!(
            outcome(r.map(|v| v.principal.subject().to_owned())),
            Err((Code::Unavailable, "JWT signing keys unavailable".into()))
        );
        assert_eq!(
            auth.verify(&a.sign(&jwks_claims()))
                .await
                .unwrap()
                .principal
                .subject(),
            "ada"
        );
        clock.advance(Duration::from_secs(if i % 2 == 0 { 31 } else { 1 }));
    }
}

/// Guard: a token with a new `kid` refused UNAVAILABLE during an outage verifies once the
/// provider is back (at the next unknown-kid refetch, 30 s): the failure does not stick.
#[tokio::test]
async fn guard_a_new_kid_verifies_once_the_provider_recovers() {
    let (a, b) = (rsa("a"), ec256("b"));
    let server = JwksServer::start(jwks(&[&a])).await;
    let clock = ManualClock::now();
    let keys = JwksKeys::builder(server.jwks_url())
        .clock(clock.clone())
        .build()
        .unwrap();
    keys.ready().await.unwrap();
    let auth = JwtAuthenticator::new(keys).issuer(ISS);
    server.set_mode(Mode::Status(503));
    let token = b.sign(&jwks_claims());
    assert_eq!(
        outcome(auth.verify(&token).await.map(|v| v.principal)).map(|p| p.subject().to_owned()),
        Err((Code::Unavailable, "JWT signing keys unavailable".into()))
    );
    server.set_jwks(jwks(&[&a, &b]));
    server.set_mode(Mode::Serve);
    clock.advance(Duration::from_secs(30));
    assert_eq!(
        auth.verify(&token).await.unwrap().principal.subject(),
        "ada"
    );
    // A made-up kid is again a verdict on the token, not an outage.
    let c = rsa("c");
    clock.advance(Duration::from_secs(30));
    assert_eq!(
        outcome(
            auth.verify(&c.sign(&jwks_claims()))
                .await
                .map(|v| v.principal)
        )
        .map(|p| p.subject().to_owned()),
        Err((Code::Unauthenticated, "unknown token key id".into()))
    );
}

// ---------------------------------------------------------------------------
// Policy patterns: library, config file, examples
// ---------------------------------------------------------------------------

/// Guard: the pattern forms that worked before (no leading `/`, a trailing `/`, a bare
/// service, `/*`) still apply; the policy is not deny-all.
#[test]
fn guard_patterns_that_worked_before_still_apply() {
    let p = Policy::new()
        .public("grpc.health.v1.Health")
        .public("helloworld.Greeter/SayHello")
        .require_scope("/helloworld.Greeter/", "greeter.admin")
        .deny("/internal.Debug")
        .require_role("ops.Console/*", "ops");
    assert!(p.invalid_patterns().is_empty());
    assert!(p.rule_for("/grpc.health.v1.Health/Check").is_public());
    assert!(p.rule_for(HELLO).is_public());
    assert_eq!(
        p.rule_for(ADMIN),
        &Rule::Require {
            scopes: vec!["greeter.admin".into()],
            roles: vec![],
        }
    );
    assert_eq!(p.rule_for("/internal.Debug/Dump"), &Rule::Deny);
    assert_eq!(p.rule_for("/other.Svc/M"), &Rule::Authenticated);
    assert_eq!(
        p.rule_for("/ops.Console/Run"),
        &Rule::Require {
            scopes: vec![],
            roles: vec!["ops".into()],
        }
    );
}

/// Guard: a config file never builds a deny-all policy behind the operator's back: a
/// string that is not a pattern is a load error naming its line, and every pattern it
/// takes is one `Policy::is_pattern` takes.
#[test]
fn guard_a_config_file_never_builds_a_deny_all_policy() {
    let base = "[api_keys]\nkeys = { billing = \"k-123\" }\n[policy]\n";
    for bad in [
        "*",
        "/",
        "",
        "/a.B/Say*",
        "helloworld.Greeter/SayHello",
        "/a.B/C?x",
    ] {
        let text = format!("{base}public = [{bad:?}]\n");
        let e = grpc_auth::config::AuthConfig::from_toml_str(&text, "auth.toml")
            .err()
            .unwrap_or_else(|| panic!("{bad:?} accepted"));
        assert_eq!(e.line(), Some(4), "{bad:?}");
        assert!(
            e.message().contains("is not a method pattern"),
            "{bad:?}: {e}"
        );
    }
    let text = format!(
        "{base}public = [\"/grpc.health.v1.Health/*\", \"{HELLO}\"]\n\
         require_scope = {{ \"{ADMIN}\" = \"greeter.admin\" }}\n"
    );
    let policy = grpc_auth::config::AuthConfig::from_toml_str(&text, "auth.toml")
        .unwrap()
        .policy()
        .unwrap();
    assert!(policy.invalid_patterns().is_empty());
    assert!(policy.rule_for(HELLO).is_public());
    assert!(policy.rule_for("/grpc.health.v1.Health/Check").is_public());
    assert_eq!(policy.rule_for("/x.Y/Z"), &Rule::Authenticated);
}

// ---------------------------------------------------------------------------
// The examples' command line
// ---------------------------------------------------------------------------

/// Starts `ext_authz_server` with `args`: the running server, or (exit status, stderr)
/// when it refused to start.
fn ext_authz_example(args: &[&str]) -> Option<Result<Example, (Option<i32>, String)>> {
    use std::io::BufRead as _;
    let path = example_path("ext_authz_server")?;
    let mut child = std::process::Command::new(path)
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "off")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let Some(addr) = line.trim().strip_prefix("ext_authz listening on ") else {
        let status = child.wait().unwrap();
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        return Some(Err((status.code(), err)));
    };
    Some(Ok(Example(child, addr.parse().unwrap())))
}

/// Guard: the examples refuse (exit status 2) a `--public` or `--require-scope` that is
/// not a pattern, so they never start a deny-all (or fail-open) server; a pattern
/// without the leading `/` still works.
#[tokio::test]
async fn guard_the_examples_never_start_with_a_pattern_that_is_not_one() {
    for args in [
        ["--public", "*"],
        ["--public", "/a.B/C?x"],
        ["--public", " /helloworld.Greeter/*"],
        [
            "--require-scope",
            "/helloworld.Greeter/SayHello*=greeter.admin",
        ],
        ["--require-scope", "/helloworld.Greeter/SayHelloAdmin=a b"],
        ["--require-scope", "=greeter.admin"],
    ] {
        let Some(started) = ext_authz_example(&[&["--api-key", "k-1=billing"][..], &args].concat())
        else {
            return;
        };
        match started {
            Err((status, err)) => assert_eq!(status, Some(2), "{args:?}: {err}"),
            Ok(_) => panic!("{args:?}: started"),
        }
    }
    let Some(started) = ext_authz_example(&[
        "--api-key",
        "k-1=billing",
        "--public",
        "helloworld.Greeter/SayHello",
        "--require-scope",
        "helloworld.Greeter/=greeter.admin",
    ]) else {
        return;
    };
    let server = started.unwrap_or_else(|e| panic!("refused: {e:?}"));
    let r = ask_over(server.1, check_request(HELLO, &[GRPC], None)).await;
    assert_eq!(code_and_message(&r).0, 0, "{r:?}");
    let r = ask_over(
        server.1,
        check_request(ADMIN, &[GRPC, ("x-api-key", "k-1")], None),
    )
    .await;
    assert_eq!(
        code_and_message(&r),
        (7, "missing scope: greeter.admin".into())
    );
}

/// An environment variable an example reads: name and value.
type EnvVar = (&'static str, String);

/// Guard: every flag wrapped in `flags::Secret` keeps its value out of the usage error,
/// from the command line or the environment, on the server and the client.
#[test]
fn guard_malformed_secret_flags_and_env_values_are_not_echoed() {
    let hidden = "Zq9-review13-hidden-secret";
    let (Some(server), Some(client)) = (
        example_path("greeter_server"),
        example_path("ext_authz_server").and(example_path("greeter_client")),
    ) else {
        return;
    };
    let runs: Vec<(&std::path::PathBuf, Vec<String>, Option<EnvVar>)> = vec![
        (
            &server,
            vec!["--basic-user".into(), format!("ada{hidden}")],
            None,
        ),
        (
            &server,
            vec!["--api-key".into(), format!("{hidden}:billing")],
            None,
        ),
        (
            &server,
            vec!["--hmac-key".into(), format!("svc:{hidden}")],
            None,
        ),
        (
            &server,
            vec![],
            Some(("GRPC_AUTH_HMAC_KEY", format!("svc:{hidden}"))),
        ),
        (
            &client,
            vec!["--basic".into(), format!("ada{hidden}")],
            None,
        ),
        (
            &client,
            vec!["--login".into(), format!("ada{hidden}")],
            None,
        ),
        (
            &client,
            vec!["--hmac".into(), format!("svc:{hidden}")],
            None,
        ),
        (
            &client,
            vec![],
            Some(("GRPC_AUTH_BASIC", format!("ada{hidden}"))),
        ),
        (
            &client,
            vec![],
            Some(("GRPC_AUTH_LOGIN", format!("ada{hidden}"))),
        ),
        (
            &client,
            vec![],
            Some(("GRPC_AUTH_HMAC", format!("svc:{hidden}"))),
        ),
    ];
    for (path, args, env) in runs {
        let mut cmd = std::process::Command::new(path);
        if path == &server {
            cmd.args(["--addr", "127.0.0.1:0"]);
        }
        cmd.args(&args).env("RUST_LOG", "off");
        if let Some((k, v)) = &env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.contains("not shown: it holds a secret"),
            "{args:?} {env:?}: {stderr}"
        );
        assert!(
            !stderr.contains("hidden-secret"),
            "{args:?} {env:?}: {stderr}"
        );
    }
}

/// Finding: a secret flag whose value starts with `--` (a random base64url secret or
/// API key does, 1 in 4096) is echoed in clap's usage error, up to its first `=`: clap
/// takes the value for an unknown flag ("unexpected argument '--<secret>' found"), and
/// `flags::Secret` never sees it. A value starting with one `-` leaks its first
/// character the same way. Fix: `allow_hyphen_values = true` on every secret-bearing
/// flag (`--api-key`, `--basic-user`, `--hmac-key`, `--jwt-hs256-secret`,
/// `--token-secret`, `--client-secret`, the client's `--token`, `--api-key`, `--basic`,
/// `--login`, `--hmac`), so the value reaches its parser.
#[test]
fn finding_a_secret_flag_value_starting_with_dashes_is_echoed() {
    let (Some(server), Some(client)) = (
        example_path("greeter_server"),
        example_path("greeter_client"),
    ) else {
        return;
    };
    let key = "--Kq7review13ApiKeySecret";
    for (path, args, serves) in [
        (
            &server,
            vec!["--api-key".to_owned(), format!("{key}=billing")],
            true,
        ),
        (
            &server,
            vec![
                "--jwt-hs256-secret".to_owned(),
                format!("{key}0123456789abcdef"),
            ],
            true,
        ),
        (&client, vec!["--token".to_owned(), key.to_owned()], false),
        (&client, vec!["--api-key".to_owned(), key.to_owned()], false),
    ] {
        let mut cmd = std::process::Command::new(path);
        if path == &server {
            cmd.args(["--addr", "127.0.0.1:0"]);
        }
        let mut child = cmd
            .args(&args)
            .env("RUST_LOG", "off")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // A server that took the value as its secret serves (and is stopped here); the
        // client fails to reach a server and exits.
        let wait = Duration::from_secs(if serves { 1 } else { 10 });
        let deadline = std::time::Instant::now() + wait;
        let mut exited = None;
        while std::time::Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                exited = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Stops it if it still runs (an exited one was reaped by `try_wait`).
        let _ = child.kill();
        let _ = child.wait();
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(
            !stderr.contains("Kq7review13"),
            "{args:?}: the secret is printed: {stderr}"
        );
        if serves {
            assert_eq!(exited, None, "{args:?}: the value was not taken: {stderr}");
        }
    }
}

/// Finding (noted by this review, tested after): a token exchanged for a login by client
/// certificate (`MtlsAuthenticator` as the login scheme) was bound to nothing: the mTLS
/// principal holds its certificate's thumbprint as the claim `x5t#S256`, not as `cnf`,
/// so the token replayed from any connection. Now both issuers bind it to the login's
/// certificate.
#[tokio::test]
async fn finding_a_token_exchanged_for_an_mtls_login_is_bound_to_its_certificate() {
    let pki = tls::test_pki();
    let (cert, _) = pki.client_cert(&["spiffe://prod.test/ns/billing/sa/api"], &[], "api");
    let (other, _) = pki.client_cert(&["spiffe://prod.test/ns/evil/sa/x"], &[], "x");
    let clock = ManualClock::now();
    let opaque = TokenExchange::new(
        grpc_auth::authn::MtlsAuthenticator::new(),
        OpaqueTokens::new(
            grpc_auth::authn::token_exchange::MemoryTokenStore::default(),
            "greeter",
        )
        .clock(clock.clone()),
    );
    let signed = TokenExchange::new(grpc_auth::authn::MtlsAuthenticator::new(), signed(&clock));
    for server in [
        ExtAuthzServer::new(AuthLayer::new(grpc_auth::Authenticator::boxed(opaque))),
        ExtAuthzServer::new(AuthLayer::new(grpc_auth::Authenticator::boxed(signed))),
    ] {
        // The login: the certificate; a token is issued.
        let r = ask(&server, check_request(HELLO, &[GRPC], Some(&cert))).await;
        assert_eq!(code_and_message(&r).0, 0, "{r:?}");
        let token = issued(&r).expect("an issued token");
        let with =
            |cert: Option<&str>| check_request(HELLO, &[GRPC, ("authorization", &token)], cert);
        assert_eq!(
            code_and_message(&ask(&server, with(Some(&cert))).await).0,
            0
        );
        assert_eq!(
            code_and_message(&ask(&server, with(None)).await),
            (
                16,
                "certificate-bound token presented without a client certificate".into()
            )
        );
        assert_eq!(
            code_and_message(&ask(&server, with(Some(&other))).await),
            (
                16,
                "certificate-bound token presented with another certificate".into()
            )
        );
    }
}
