//! Twelfth adversarial review: the JWT scheme's key handling (JWKS rotation, unknown
//! `kid`s while the provider is down), the Basic-to-Bearer exchange (what an issued token
//! keeps of the login: lifetime, certificate binding, scopes; tokens of another
//! configuration), and the examples' command line (patterns the policy never reaches,
//! secrets in usage errors).
//!
//! `/// Finding:` tests fail at the commit reviewed and prove a bug; `/// Guard:` tests
//! are attacks the code withstood.
#![cfg(all(feature = "jwks", feature = "ext-authz"))]

#[path = "support/jwks_server.rs"]
mod jwks_server;
#[path = "../examples/support/tls.rs"]
mod tls;
#[path = "../examples/support/tokens.rs"]
mod tokens;

#[path = "support/checks.rs"]
mod checks;
use checks::{Example, ask_over, check_request, code_and_message, example_path, thumbprint};

use std::io::Read as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use grpc_auth::AuthLayer;
use grpc_auth::authn::jwt::{JwksKeys, JwtAuthenticator, JwtKey, StaticKeys};
use grpc_auth::authn::token_exchange::{
    MemoryTokenStore, OpaqueTokens, SignedTokens, TokenExchange, TokenIssuer, TokenKeys,
};
use grpc_auth::clock::{Clock, ManualClock};
use grpc_auth::ext_authz::ExtAuthzServer;
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::authorization_server::Authorization;
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use jsonwebtoken::Algorithm;
use jwks_server::{JwksServer, Mode, ec256, jwks, rsa};
use serde_json::{Value, json};
use tonic::Code;

const HELLO: &str = "/helloworld.Greeter/SayHello";
const ADMIN: &str = "/helloworld.Greeter/SayHelloAdmin";
const GRPC: (&str, &str) = ("content-type", "application/grpc");
const SECRET: &str = "review-12-idp-secret-0123456789abcdef";
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

fn text(s: grpc_auth::Secret) -> String {
    String::from_utf8(s.expose().to_vec()).unwrap()
}

fn outcome<T>(r: Result<T, grpc_auth::AuthError>) -> Result<T, (Code, String)> {
    r.map_err(|e| (e.code(), e.to_string()))
}

// ---------------------------------------------------------------------------
// Envoy checks, in process
// ---------------------------------------------------------------------------

/// Finding: the Basic-to-Bearer exchange launders a certificate-bound token (RFC 8705)
/// into a plain bearer. A JWT login bound to a client certificate (`cnf.x5t#S256`) is
/// refused without that certificate, yet the opaque token issued for it is accepted
/// from any connection: `TokenExchange::authenticate` returns the issuer's principal
/// (which still carries `cnf`) without `mtls::check_binding`, so a token stolen from
/// the bound workload replays from anywhere.
#[tokio::test]
async fn finding_an_exchanged_token_drops_the_logins_certificate_binding() {
    let pki = tls::test_pki();
    let (cert, _) = pki.client_cert(&["spiffe://prod.test/ns/billing/sa/api"], &[], "api");
    let (other, _) = pki.client_cert(&["spiffe://prod.test/ns/evil/sa/x"], &[], "x");
    let clock = ManualClock::now();
    let bound = idp_token(&json!({
        "sub": "ada",
        "exp": clock.unix_seconds() + 3600,
        "cnf": { "x5t#S256": thumbprint(&cert) },
    }));
    let exchange = TokenExchange::new(
        idp(&clock),
        OpaqueTokens::new(MemoryTokenStore::default(), "greeter").clock(clock.clone()),
    );
    let server = ExtAuthzServer::new(AuthLayer::new(exchange));
    let ask = |req: CheckRequest| {
        let server = &server;
        async move {
            server
                .check(tonic::Request::new(req))
                .await
                .unwrap()
                .into_inner()
        }
    };

    // The login itself holds the binding.
    let jwt = format!("Bearer {bound}");
    let r = ask(check_request(HELLO, &[GRPC, ("authorization", &jwt)], None)).await;
    assert_eq!(
        code_and_message(&r),
        (
            16,
            "certificate-bound token presented without a client certificate".into()
        )
    );
    // With the certificate: accepted, and a token is issued.
    let r = ask(check_request(
        HELLO,
        &[GRPC, ("authorization", &jwt)],
        Some(&cert),
    ))
    .await;
    assert_eq!(code_and_message(&r).0, 0, "{r:?}");
    let Some(HttpResponse::OkResponse(ok)) = r.http_response else {
        panic!("not ok: {r:?}")
    };
    let issued = ok
        .response_headers_to_add
        .iter()
        .filter_map(|h| h.header.as_ref())
        .find(|h| h.key.eq_ignore_ascii_case("authorization"))
        .map(|h| h.value.clone())
        .expect("an issued token");
    assert!(issued.starts_with("Bearer gat_"), "{issued}");

    // The issued token from the bound workload is accepted...
    let r = ask(check_request(
        HELLO,
        &[GRPC, ("authorization", &issued)],
        Some(&cert),
    ))
    .await;
    assert_eq!(code_and_message(&r).0, 0, "{r:?}");
    // ...but never without the certificate, nor with another one.
    let r = ask(check_request(
        HELLO,
        &[GRPC, ("authorization", &issued)],
        None,
    ))
    .await;
    assert_eq!(
        code_and_message(&r),
        (
            16,
            "certificate-bound token presented without a client certificate".into()
        )
    );
    let r = ask(check_request(
        HELLO,
        &[GRPC, ("authorization", &issued)],
        Some(&other),
    ))
    .await;
    assert_eq!(
        code_and_message(&r),
        (
            16,
            "certificate-bound token presented with another certificate".into()
        )
    );
}

// ---------------------------------------------------------------------------
// What an issued token keeps of its login
// ---------------------------------------------------------------------------

/// Finding: an opaque token outlives the JWT it was exchanged for when that JWT's `exp`
/// is a fractional NumericDate (RFC 7519 allows it; the JWT scheme accepts it, flooring
/// it). `OpaqueTokens::issue` bounds the token by `claims["exp"].as_u64()`, which is
/// `None` for `1700000100.5`, so the token lives the whole TTL (15 min): revoking the
/// JWT's `jti` no longer "covers the whole token's life", as its comment promises.
#[tokio::test]
async fn finding_an_opaque_token_outlives_a_login_jwt_with_a_fractional_exp() {
    let clock = ManualClock::now();
    let now = clock.unix_seconds();
    let jwt = idp(&clock);
    let opaque = OpaqueTokens::new(MemoryTokenStore::default(), "greeter").clock(clock.clone());
    let login = idp_token(&json!({ "sub": "ada", "exp": (now + 100) as f64 + 0.5 }));
    let principal = jwt.verify(&login).await.unwrap().principal;
    let token = opaque.issue(&principal).await.unwrap();
    let token = text(token);
    assert_eq!(
        outcome(opaque.verify(&token).await).unwrap().subject(),
        "ada"
    );

    // Past the login's exp and the JWT leeway (60 s): the login is refused...
    clock.advance(Duration::from_secs(170));
    assert_eq!(
        outcome(jwt.verify(&login).await.map(|v| v.principal)).map(|p| p.subject().to_owned()),
        Err((Code::Unauthenticated, "token expired".into()))
    );
    // ...and so must be the token issued for it.
    assert_eq!(
        outcome(opaque.verify(&token).await).map(|p| p.subject().to_owned()),
        Err((Code::Unauthenticated, "token expired".into()))
    );
}

/// Guard: with an integer `exp`, the opaque token is bounded by the login's lifetime.
#[tokio::test]
async fn guard_an_opaque_token_never_outlives_a_login_jwt_with_an_integer_exp() {
    let clock = ManualClock::now();
    let now = clock.unix_seconds();
    let jwt = idp(&clock);
    let opaque = OpaqueTokens::new(MemoryTokenStore::default(), "greeter").clock(clock.clone());
    let login = idp_token(&json!({ "sub": "ada", "exp": now + 100 }));
    let principal = jwt.verify(&login).await.unwrap().principal;
    let token = text(opaque.issue(&principal).await.unwrap());
    clock.advance(Duration::from_secs(100));
    assert_eq!(
        outcome(opaque.verify(&token).await).map(|p| p.subject().to_owned()),
        Err((Code::Unauthenticated, "token expired".into()))
    );
}

/// Finding: a signed (stateless) exchange token outlives the JWT it was exchanged for.
/// `SignedTokens::sign` sets `exp = iat + ttl` (15 min) whatever the login principal's
/// own `exp`, while `OpaqueTokens` bounds its tokens by it; a login JWT about to expire
/// (or whose `jti` is then revoked) buys a fresh 15-minute token that nothing can
/// revoke.
#[tokio::test]
async fn finding_a_signed_token_outlives_the_login_jwt_it_was_exchanged_for() {
    let clock = ManualClock::now();
    let now = clock.unix_seconds();
    let jwt = idp(&clock);
    let keys = TokenKeys::hs256("k1", b"review-12-token-secret-0123456789abc".as_slice()).unwrap();
    let signed = SignedTokens::new(keys, "greeter").clock(clock.clone());
    let login = idp_token(&json!({ "sub": "ada", "exp": now + 100 }));
    let principal = jwt.verify(&login).await.unwrap().principal;
    let token = text(signed.issue(&principal).await.unwrap());
    assert_eq!(
        outcome(signed.verify(&token).await).unwrap().subject(),
        "ada"
    );
    // Past the login's exp plus either side's 60 s leeway.
    clock.advance(Duration::from_secs(170));
    assert_eq!(
        outcome(jwt.verify(&login).await.map(|v| v.principal)).map(|p| p.subject().to_owned()),
        Err((Code::Unauthenticated, "token expired".into()))
    );
    assert_eq!(
        outcome(signed.verify(&token).await).map(|p| p.subject().to_owned()),
        Err((Code::Unauthenticated, "token expired".into()))
    );
}

/// Finding: a signed exchange token can carry more scopes than its login. The login's
/// scopes are joined with spaces into the token's `scope` claim and split on whitespace
/// when it is verified, so one scope `"greeter.read greeter.admin"` (a JWT `scp` array
/// element, which the JWT scheme keeps whole) comes back as two scopes, and the token
/// passes `require_scope(.., "greeter.admin")` the login itself fails.
#[tokio::test]
async fn finding_a_signed_token_splits_a_scope_with_a_space_into_several() {
    let clock = ManualClock::now();
    let jwt = idp(&clock);
    let keys = TokenKeys::hs256("k1", b"review-12-token-secret-0123456789abc".as_slice()).unwrap();
    let signed = SignedTokens::new(keys, "greeter").clock(clock.clone());
    let login = idp_token(&json!({
        "sub": "ada",
        "exp": clock.unix_seconds() + 3600,
        "scp": ["greeter.read greeter.admin"],
    }));
    let principal = jwt.verify(&login).await.unwrap().principal;
    assert_eq!(principal.scopes(), ["greeter.read greeter.admin"]);
    let policy = grpc_auth::Policy::new().require_scope(ADMIN, "greeter.admin");
    assert_eq!(
        outcome(policy.rule_for(ADMIN).check(&principal)),
        Err((
            Code::PermissionDenied,
            "missing scope: greeter.admin".into()
        ))
    );
    let token = text(signed.issue(&principal).await.unwrap());
    let exchanged = signed.verify(&token).await.unwrap();
    assert_eq!(
        exchanged.scopes(),
        principal.scopes(),
        "the token's scopes are the login's"
    );
    assert_eq!(
        outcome(policy.rule_for(ADMIN).check(&exchanged)),
        Err((
            Code::PermissionDenied,
            "missing scope: greeter.admin".into()
        ))
    );
}

/// Guard: a token signed by another exchange configuration sharing the keys and the
/// audience but naming another issuer is not ours (absent, so no scheme vouches for
/// it), and verified anyway it is refused by its `iss`.
#[tokio::test]
async fn guard_a_token_of_another_issuer_sharing_the_keys_is_refused() {
    let keys = TokenKeys::hs256("k1", b"review-12-token-secret-0123456789abc".as_slice()).unwrap();
    let a = SignedTokens::new(keys.clone(), "greeter").issuer("replica-set-a");
    let b = SignedTokens::new(keys, "greeter").issuer("replica-set-b");
    let token = a.sign(&grpc_auth::Principal::new("ada", "basic")).unwrap();
    assert!(a.recognizes(&token));
    assert!(!b.recognizes(&token));
    assert_eq!(
        outcome(b.verify(&token).await).map(|p| p.subject().to_owned()),
        Err((Code::Unauthenticated, "invalid token issuer".into()))
    );
}

/// Guard: concurrent exchanges issue distinct tokens, each proving its own login; a
/// revoked one stops at once while the others keep working.
#[tokio::test]
async fn guard_concurrent_exchanges_issue_distinct_tokens_revoked_one_by_one() {
    let opaque = std::sync::Arc::new(OpaqueTokens::new(MemoryTokenStore::new(1_000), "greeter"));
    let issued: Vec<_> = (0..64)
        .map(|i| {
            let opaque = opaque.clone();
            tokio::spawn(async move {
                let p = grpc_auth::Principal::new(format!("user-{i}"), "basic");
                (i, text(opaque.issue(&p).await.unwrap()))
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in issued {
        all.push(t.await.unwrap());
    }
    let distinct: std::collections::HashSet<_> = all.iter().map(|(_, t)| t.clone()).collect();
    assert_eq!(distinct.len(), 64);
    for (i, t) in &all {
        assert_eq!(
            opaque.verify(t).await.unwrap().subject(),
            format!("user-{i}")
        );
    }
    assert!(opaque.revoke(&all[0].1).await.unwrap());
    assert_eq!(
        outcome(opaque.verify(&all[0].1).await).map(|p| p.subject().to_owned()),
        Err((Code::Unauthenticated, "unknown or revoked token".into()))
    );
    assert_eq!(opaque.verify(&all[1].1).await.unwrap().subject(), "user-1");
}

// ---------------------------------------------------------------------------
// JWKS: removed keys, unknown kids while the provider is down
// ---------------------------------------------------------------------------

fn jwks_claims() -> Value {
    json!({ "sub": "ada", "iss": ISS, "exp": unix_now() + 3600 })
}

/// Guard: a key removed from the JWKS stops verifying at once, even for a token the
/// verified-token cache holds (the generation moved).
#[tokio::test]
async fn guard_a_removed_jwks_key_is_not_served_from_the_token_cache() {
    let (a, b) = (rsa("a"), ec256("b"));
    let server = JwksServer::start(jwks(&[&a, &b])).await;
    let clock = ManualClock::now();
    let keys = JwksKeys::builder(server.jwks_url())
        .clock(clock.clone())
        .build()
        .unwrap();
    let auth = JwtAuthenticator::new(keys.clone()).issuer(ISS);
    let token = a.sign(&jwks_claims());
    assert_eq!(auth.verify_cached(&token).await.unwrap().subject(), "ada");
    server.set_jwks(jwks(&[&b]));
    keys.refresh().await.unwrap();
    assert_eq!(
        outcome(auth.verify_cached(&token).await).map(|p| p.subject().to_owned()),
        Err((Code::Unauthenticated, "unknown token key id".into()))
    );
}

/// Finding: a token whose `kid` is new (a rotation the server has not seen) while the
/// JWKS provider is down is answered UNAUTHENTICATED "unknown token key id", though the
/// refetch that would have told failed: a dependency outage must be UNAVAILABLE (the
/// client keeps its token and retries) and never a verdict on the credential.
/// `refetch_for_unknown_kid` drops the fetch's error and returns the stale keys.
#[tokio::test]
async fn finding_an_unknown_kid_while_the_provider_is_down_is_unavailable() {
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
    // The provider rotated to b and went down: the refetch for b fails.
    let r = auth.verify(&b.sign(&jwks_claims())).await;
    assert_eq!(server.jwks_fetches(), 2, "the unknown kid refetched");
    assert_eq!(
        outcome(r.map(|v| v.principal.subject().to_owned())),
        Err((Code::Unavailable, "JWT signing keys unavailable".into()))
    );
    // Known keys still serve meanwhile.
    assert_eq!(
        auth.verify(&a.sign(&jwks_claims()))
            .await
            .unwrap()
            .principal
            .subject(),
        "ada"
    );
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

/// Finding: `--require-scope` with a glob anywhere but a trailing `/*` (here
/// `/helloworld.Greeter/SayHello*`) is taken as a literal method name no call has: the
/// server starts, and the method the operator meant to protect needs no scope at all.
/// `policy::pattern` accepts any string; a pattern with `*` elsewhere (or no `/pkg.Service`
/// form) should be refused at start-up (exit status 2).
#[tokio::test]
async fn finding_a_require_scope_glob_the_policy_never_reaches_starts_and_fails_open() {
    let Some(started) = ext_authz_example(&[
        "--jwt-hs256-secret",
        SECRET,
        "--require-scope",
        "/helloworld.Greeter/SayHello*=greeter.admin",
    ]) else {
        return;
    };
    let server = match started {
        Err((status, _)) => {
            assert_eq!(status, Some(2), "refused as a usage error");
            return;
        }
        Ok(server) => server,
    };
    let no_scope = format!(
        "Bearer {}",
        idp_token(&json!({ "sub": "ada", "exp": unix_now() + 3600 }))
    );
    let r = ask_over(
        server.1,
        check_request(ADMIN, &[GRPC, ("authorization", &no_scope)], None),
    )
    .await;
    assert_eq!(
        code_and_message(&r),
        (7, "missing scope: greeter.admin".into())
    );
}

/// Finding: `--public ''` (an empty value, e.g. an unset shell variable) is taken as the
/// pattern `/`, i.e. the service `""`, which every single-segment path belongs to: the
/// ext_authz server then allows `/admin`, `/metrics`, ... of a plain HTTP upstream
/// without any credential. An empty or `/` pattern should be refused at start-up.
#[tokio::test]
async fn finding_an_empty_public_pattern_makes_every_single_segment_path_public() {
    let Some(started) = ext_authz_example(&["--api-key", "k-1=billing", "--public", ""]) else {
        return;
    };
    let server = match started {
        Err((status, _)) => {
            assert_eq!(status, Some(2), "refused as a usage error");
            return;
        }
        Ok(server) => server,
    };
    // A gRPC method without credentials: refused, as it should be...
    let r = ask_over(server.1, check_request(HELLO, &[GRPC], None)).await;
    assert_eq!(
        code_and_message(&r),
        (16, "missing authorization metadata".into())
    );
    // ...and so must be any other path the operator never named.
    let r = ask_over(server.1, check_request("/admin", &[], None)).await;
    assert_eq!(
        code_and_message(&r),
        (16, "missing authorization metadata".into()),
        "{r:?}"
    );
}

/// Finding: a malformed `GRPC_AUTH_HMAC_KEY` (`:` for `=`) is echoed, secret and all,
/// in the usage error on stderr, although the flag is declared `hide_env_values` so
/// that the secret never shows: clap's "invalid value '<value>'" error prints it.
/// The same holds for `--basic-user ada=<password>`.
#[test]
fn finding_a_malformed_secret_flag_is_echoed_in_the_usage_error() {
    let Some(path) = example_path("greeter_server") else {
        return;
    };
    let hidden = "env-hmac-secret-do-not-print";
    let out = std::process::Command::new(&path)
        .args(["--addr", "127.0.0.1:0"])
        .env("GRPC_AUTH_HMAC_KEY", format!("svc-a:{hidden}"))
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        !stderr.contains(hidden),
        "the HMAC secret is printed: {stderr}"
    );

    let password = "basic-password-do-not-print";
    let out = std::process::Command::new(&path)
        .args(["--addr", "127.0.0.1:0", "--basic-user"])
        .arg(format!("ada={password}"))
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        !stderr.contains(password),
        "the password is printed: {stderr}"
    );
}

/// Guard: `--config` with a scheme or policy flag is a usage error, not a merge in
/// which one side silently wins.
#[test]
fn guard_config_with_a_policy_flag_is_a_usage_error() {
    let Some(path) = example_path("ext_authz_server") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("review-12-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("auth.toml");
    std::fs::write(&file, "[api_keys]\nkeys = { billing = \"k-9\" }\n").unwrap();
    for extra in [
        ["--public", "/helloworld.Greeter/*"],
        ["--token-secret", "review-12-token-secret-0123456789abc"],
    ] {
        let out = std::process::Command::new(&path)
            .args(["--addr", "127.0.0.1:0", "--config", file.to_str().unwrap()])
            .args(extra)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(
            stderr.contains("cannot be used with"),
            "{extra:?}: {stderr}"
        );
        assert!(!stderr.contains("0123456789abc"), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
