//! Fourteenth adversarial review: the HMAC request-signature scheme (signing-string
//! ambiguity, algorithm downgrade, the date window, key ids, the replay store, the
//! signature's encodings, size bounds), the Tyk coprocess plugin's auth_check reply, and
//! the certificate binding of a token exchanged for a login (commit d95cafe).
//!
//! `/// Finding:` tests fail at the commit reviewed and prove a bug; `/// Guard:` tests
//! are attacks the code withstood.
#![cfg(all(feature = "ext-authz", feature = "config"))]

#[path = "../examples/support/tls.rs"]
mod tls;
#[path = "../examples/support/tokens.rs"]
mod tokens;
#[path = "../examples/support/tyk.rs"]
mod tyk;

#[path = "support/checks.rs"]
mod checks;
use checks::{ask, check_request, code_and_message, issued};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
use grpc_auth::authn::hmac::{HmacError, HmacVerifier, StaticHmacKeys};
use grpc_auth::authn::jwt::{JwtAuthenticator, JwtKey, StaticKeys};
use grpc_auth::authn::token_exchange::{OpaqueTokens, SignedTokens, TokenExchange, TokenKeys};
use grpc_auth::authn::{BasicAuthenticator, MtlsAuthenticator};
use grpc_auth::clock::{Clock, ManualClock};
use grpc_auth::ext_authz::ExtAuthzServer;
use grpc_auth::ext_authz::envoy_types::pb::envoy::service::auth::v3::authorization_server::Authorization;
use grpc_auth::{AuthError, AuthLayer, Authenticator};
use grpc_auth_protos::coprocess::{
    HookType, MiniRequestObject, Object, ReturnOverrides, SessionState,
};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use jsonwebtoken::Algorithm;
use serde_json::json;
use tonic::Code;

const NOW: u64 = 1_700_000_000;
const DATE: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
const METHOD: &str = "/helloworld.Greeter/SayHello";
const SECRET: &str = "review-14-hmac-secret";

// ---------------------------------------------------------------------------
// HMAC helpers: signatures computed here from the format, not with the signer
// ---------------------------------------------------------------------------

fn mac<M: Mac + hmac::digest::KeyInit>(secret: &str, msg: &str) -> Vec<u8> {
    let mut m = <M as hmac::digest::KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(msg.as_bytes());
    m.finalize().into_bytes().to_vec()
}

fn sha256(msg: &str) -> Vec<u8> {
    mac::<Hmac<sha2::Sha256>>(SECRET, msg)
}

fn http_date(unix: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(unix))
}

/// The signing string over `(request-target) date x-nonce` for a POST to `path`.
fn signing(path: &str, date: &str, nonce: &str) -> String {
    format!("(request-target): post {path}\ndate: {date}\nx-nonce: {nonce}")
}

fn authorization(key_id: &str, algorithm: &str, headers: &str, sig: &str) -> String {
    format!(
        r#"Signature keyId="{key_id}",algorithm="{algorithm}",headers="{headers}",signature="{sig}""#
    )
}

/// Metadata from pairs, repeated names appended.
fn metadata(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// A correctly signed call by `svc-a` with `nonce`, dated `date`.
fn signed(date: &str, nonce: &str) -> HeaderMap {
    let sig = STANDARD.encode(sha256(&signing(METHOD, date, nonce)));
    let auth = authorization(
        "svc-a",
        "hmac-sha256",
        "(request-target) date x-nonce",
        &sig,
    );
    metadata(&[("authorization", &auth), ("date", date), ("x-nonce", nonce)])
}

fn verifier(clock: &ManualClock) -> HmacVerifier<StaticHmacKeys> {
    HmacVerifier::new(StaticHmacKeys::new().key("svc-a", SECRET)).clock(clock.clone())
}

/// The verification's outcome: the key id, or the gRPC code and message the layer answers.
async fn check(
    v: &HmacVerifier<StaticHmacKeys>,
    headers: &HeaderMap,
) -> Result<String, (Code, String)> {
    v.verify("POST", METHOD, headers)
        .await
        .map(|ok| ok.key_id)
        .map_err(|e: HmacError| {
            let e = AuthError::from(e);
            (e.code(), e.to_string())
        })
}

fn unauth(msg: &str) -> Result<String, (Code, String)> {
    Err((Code::Unauthenticated, msg.to_owned()))
}

// ---------------------------------------------------------------------------
// HMAC: the signing string
// ---------------------------------------------------------------------------

/// Guard: the `headers` list cannot make one signing string stand for another request:
/// a name listed twice, a list without `date` or without `(request-target)`, a list
/// joined by commas or holding a quote-free odd name, `(request-target)` misspelt.
#[tokio::test]
async fn guard_the_headers_list_cannot_respell_the_signing_string() {
    let clock = ManualClock::at_unix(NOW);
    let v = verifier(&clock);
    let sig = STANDARD.encode(sha256(&signing(METHOD, DATE, "n1")));
    let cases: [(&str, &str); 6] = [
        (
            "(request-target) date date x-nonce",
            "malformed HMAC Signature: date listed twice in headers",
        ),
        (
            "(request-target) DATE x-nonce Date",
            "malformed HMAC Signature: date listed twice in headers",
        ),
        (
            "(request-target) x-nonce",
            "HMAC signature does not cover date",
        ),
        (
            "date x-nonce",
            "HMAC signature does not cover (request-target)",
        ),
        (
            "(request-target),date,x-nonce",
            "malformed HMAC Signature: invalid header name in headers",
        ),
        (
            "(request_target) date x-nonce",
            "malformed HMAC Signature: invalid header name in headers",
        ),
    ];
    for (list, msg) in cases {
        let auth = authorization("svc-a", "hmac-sha256", list, &sig);
        let h = metadata(&[("authorization", &auth), ("date", DATE), ("x-nonce", "n1")]);
        assert_eq!(check(&v, &h).await, unauth(msg), "headers={list:?}");
    }
    // The request target binds the method and the path: another method, another path.
    let h = signed(DATE, "n2");
    for (method, path) in [
        ("GET", METHOD),
        ("POST", "/helloworld.Greeter/SayHelloAdmin"),
    ] {
        let e = v.verify(method, path, &h).await.unwrap_err();
        assert_eq!(e, HmacError::BadSignature, "{method} {path}");
    }
    // The right request, the list's names in any case: accepted once.
    let auth = authorization(
        "svc-a",
        "hmac-sha256",
        "(Request-Target) Date X-Nonce",
        &sig,
    );
    let h = metadata(&[("authorization", &auth), ("date", DATE), ("x-nonce", "n1")]);
    assert_eq!(check(&v, &h).await, Ok("svc-a".into()));
}

/// Guard: a signed header that is repeated (two `date`, two `x-nonce`, two
/// `authorization`) is refused rather than one of its values being picked; a value's
/// surrounding spaces are the signer's own trimming, nothing else.
#[tokio::test]
async fn guard_repeated_signed_headers_are_refused() {
    let clock = ManualClock::at_unix(NOW);
    let v = verifier(&clock);
    let good = signed(DATE, "n1");
    let auth = good["authorization"].to_str().unwrap().to_owned();
    let cases = [
        (
            metadata(&[
                ("authorization", &auth),
                ("date", DATE),
                ("date", DATE),
                ("x-nonce", "n1"),
            ]),
            "multiple date metadata entries",
        ),
        (
            metadata(&[
                ("authorization", &auth),
                ("date", DATE),
                ("x-nonce", "n1"),
                ("x-nonce", "n2"),
            ]),
            "multiple x-nonce metadata entries",
        ),
        (
            metadata(&[
                ("authorization", &auth),
                ("authorization", &auth),
                ("date", DATE),
                ("x-nonce", "n1"),
            ]),
            "multiple authorization metadata entries",
        ),
        (
            metadata(&[
                ("authorization", &auth),
                ("date", DATE),
                ("x-nonce", "n1, n2"),
            ]),
            "HMAC signature mismatch",
        ),
    ];
    for (h, msg) in cases {
        assert_eq!(check(&v, &h).await, unauth(msg), "{h:?}");
    }
}

// ---------------------------------------------------------------------------
// HMAC: algorithms
// ---------------------------------------------------------------------------

/// Guard: a correct HMAC-SHA1 signature is refused by default whatever the case of its
/// name; a name that is not exactly an algorithm (spaces, `sha256`, `rsa-sha256`) is
/// refused, never downgraded to SHA-1 as Tyk's gateway does; a SHA-256 MAC labelled
/// SHA-512 is a mismatch.
#[tokio::test]
async fn guard_algorithm_downgrade_and_odd_names_are_refused() {
    let clock = ManualClock::at_unix(NOW);
    let v = verifier(&clock);
    let msg = signing(METHOD, DATE, "n1");
    let sha1 = STANDARD.encode(mac::<Hmac<sha1::Sha1>>(SECRET, &msg));
    let s256 = STANDARD.encode(sha256(&msg));
    let list = "(request-target) date x-nonce";
    let cases = [
        (
            "hmac-sha1",
            sha1.as_str(),
            "HMAC algorithm hmac-sha1 is not allowed",
        ),
        (
            "HMAC-SHA1",
            sha1.as_str(),
            "HMAC algorithm hmac-sha1 is not allowed",
        ),
        ("hmac-sha256 ", s256.as_str(), "unsupported HMAC algorithm"),
        ("sha256", s256.as_str(), "unsupported HMAC algorithm"),
        ("rsa-sha256", s256.as_str(), "unsupported HMAC algorithm"),
        ("hmac-sha-256", s256.as_str(), "unsupported HMAC algorithm"),
        ("hmac-sha512", s256.as_str(), "HMAC signature mismatch"),
        (
            "hmac-sha1",
            s256.as_str(),
            "HMAC algorithm hmac-sha1 is not allowed",
        ),
    ];
    for (alg, sig, expected) in cases {
        let auth = authorization("svc-a", alg, list, sig);
        let h = metadata(&[("authorization", &auth), ("date", DATE), ("x-nonce", "n1")]);
        assert_eq!(check(&v, &h).await, unauth(expected), "algorithm={alg:?}");
    }
}

// ---------------------------------------------------------------------------
// HMAC: the date window
// ---------------------------------------------------------------------------

/// Guard: dates just outside the window either way, far past, far future, unparseable
/// or in another zone are refused; an `x-aux-date` added by an attacker to refresh a
/// stale signed `date` changes the signing string (mismatch), and a stale `x-aux-date`
/// wins over a fresh unsigned `date`.
#[tokio::test]
async fn guard_the_date_window_cannot_be_dodged() {
    let clock = ManualClock::at_unix(NOW);
    let v = verifier(&clock);
    let window = "date is outside the allowed clock skew of 300 s";
    for (i, unix) in [NOW + 301, NOW - 301, 0, NOW + 10 * 365 * 86_400]
        .into_iter()
        .enumerate()
    {
        let h = signed(&http_date(unix), &format!("w{i}"));
        assert_eq!(check(&v, &h).await, unauth(window), "date {unix}");
    }
    for bad in [
        "yesterday",
        "Tue, 14 Nov 2023 22:13:20 +0000",
        "1700000000",
        "Tue, 14 Nov 2023 22:13:20 PST",
    ] {
        let h = signed(bad, "b");
        assert_eq!(
            check(&v, &h).await,
            unauth("date metadata is not an HTTP date"),
            "date {bad:?}"
        );
    }
    // A stale signature (signed date 1 h old) and a fresh x-aux-date added by an attacker.
    let stale = http_date(NOW - 3600);
    let mut h = signed(&stale, "s1");
    h.insert("x-aux-date", HeaderValue::from_str(DATE).unwrap());
    assert_eq!(check(&v, &h).await, unauth("HMAC signature mismatch"));
    // A client that signed x-aux-date an hour ago: a fresh `date` next to it is ignored.
    let msg = format!("(request-target): post {METHOD}\nx-aux-date: {stale}\nx-nonce: s2");
    let auth = authorization(
        "svc-a",
        "hmac-sha256",
        "(request-target) date x-nonce",
        &STANDARD.encode(sha256(&msg)),
    );
    let h = metadata(&[
        ("authorization", &auth),
        ("x-aux-date", &stale),
        ("date", DATE),
        ("x-nonce", "s2"),
    ]);
    assert_eq!(check(&v, &h).await, unauth(window));
    // Both edges of the window are inside it.
    for (i, unix) in [NOW + 300, NOW - 300].into_iter().enumerate() {
        let h = signed(&http_date(unix), &format!("edge{i}"));
        assert_eq!(check(&v, &h).await, Ok("svc-a".into()), "date {unix}");
    }
}

// ---------------------------------------------------------------------------
// HMAC: key ids
// ---------------------------------------------------------------------------

/// Guard: empty, quote-bearing, respelled and padded key ids never reach another key's
/// secret; an unknown id and a known id with a wrong MAC are both UNAUTHENTICATED and
/// neither message echoes the id or the signature.
#[tokio::test]
async fn guard_key_ids_are_exact_and_never_echoed() {
    let clock = ManualClock::at_unix(NOW);
    let v = verifier(&clock);
    let sig = STANDARD.encode(sha256(&signing(METHOD, DATE, "k")));
    let list = "(request-target) date x-nonce";
    let raw = |params: &str| {
        metadata(&[
            ("authorization", &format!("Signature {params}")),
            ("date", DATE),
            ("x-nonce", "k"),
        ])
    };
    let cases = [
        (
            format!(r#"keyId="",algorithm="hmac-sha256",headers="{list}",signature="{sig}""#),
            "malformed HMAC Signature: empty value of keyId",
        ),
        (
            format!(
                r#"keyId="svc-a"x",algorithm="hmac-sha256",headers="{list}",signature="{sig}""#
            ),
            "malformed HMAC Signature: expected , after the value of keyId",
        ),
        (
            format!(
                r#"keyId="svc\"-a",algorithm="hmac-sha256",headers="{list}",signature="{sig}""#
            ),
            "malformed HMAC Signature: escape in value of keyId",
        ),
        (
            format!(r#"keyId="SVC-A",algorithm="hmac-sha256",headers="{list}",signature="{sig}""#),
            "unknown HMAC key id",
        ),
        (
            format!(r#"keyId=" svc-a",algorithm="hmac-sha256",headers="{list}",signature="{sig}""#),
            "unknown HMAC key id",
        ),
        (
            format!(
                r#"keyId="svc-a",keyid="svc-b",algorithm="hmac-sha256",headers="{list}",signature="{sig}""#
            ),
            "malformed HMAC Signature: duplicate parameter keyid",
        ),
    ];
    for (params, msg) in cases {
        let got = check(&v, &raw(&params)).await;
        assert_eq!(got, unauth(msg), "{params}");
        let text = got.unwrap_err().1;
        assert!(!text.contains(&sig) && !text.contains(SECRET), "{text}");
    }
}

// ---------------------------------------------------------------------------
// HMAC: replays
// ---------------------------------------------------------------------------

/// Guard: a signature is accepted once: again as is, re-encoded (URL-encoded, lower-case
/// escapes, letters escaped), beside a different unsigned header, or under a respelled
/// parameter order it is a replay; after the window it is refused by its date, never
/// accepted.
#[tokio::test]
async fn guard_a_signature_is_accepted_once_in_any_spelling() {
    let clock = ManualClock::at_unix(NOW);
    let v = verifier(&clock);
    let raw = sha256(&signing(METHOD, DATE, "r1"));
    let b64 = STANDARD.encode(&raw);
    let h = signed(DATE, "r1");
    assert_eq!(check(&v, &h).await, Ok("svc-a".into()));
    let replay = unauth("HMAC signature already used (replay)");
    assert_eq!(check(&v, &h).await, replay);
    let escaped_all: String = b64.bytes().map(|b| format!("%{b:02X}")).collect();
    let respelled = [
        authorization(
            "svc-a",
            "hmac-sha256",
            "(request-target) date x-nonce",
            &b64.replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3d"),
        ),
        authorization(
            "svc-a",
            "hmac-sha256",
            "(request-target) date x-nonce",
            &escaped_all,
        ),
        authorization(
            "svc-a",
            "HMAC-SHA256",
            "(request-target)  date\tx-nonce",
            &b64,
        ),
        format!(
            r#"Signature signature="{b64}",headers="(request-target) date x-nonce",algorithm="hmac-sha256",keyId="svc-a""#
        ),
    ];
    for auth in respelled {
        let h = metadata(&[("authorization", &auth), ("date", DATE), ("x-nonce", "r1")]);
        assert_eq!(check(&v, &h).await, replay, "{auth}");
    }
    let mut extra = h.clone();
    extra.insert("x-unsigned", HeaderValue::from_static("other"));
    extra.insert("user-agent", HeaderValue::from_static("evil/1.0"));
    assert_eq!(check(&v, &extra).await, replay);
    // A clone (another handler on the same verifier) shares the memory.
    assert_eq!(check(&v.clone(), &h).await, replay);
    // After the window: still never accepted.
    clock.advance(Duration::from_secs(301));
    assert_eq!(
        check(&v, &h).await,
        unauth("date is outside the allowed clock skew of 300 s")
    );
}

/// Guard: the same signature sent concurrently from many tasks is accepted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_concurrent_replays_are_accepted_exactly_once() {
    let clock = ManualClock::at_unix(NOW);
    let v = verifier(&clock);
    let h = signed(DATE, "concurrent");
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (v, h) = (v.clone(), h.clone());
        tasks.push(tokio::spawn(async move { check(&v, &h).await }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(id) => {
                assert_eq!(id, "svc-a");
                ok += 1;
            }
            Err(e) => assert_eq!(
                e,
                (
                    Code::Unauthenticated,
                    "HMAC signature already used (replay)".into()
                )
            ),
        }
    }
    assert_eq!(ok, 1);
}

/// Guard: a replay cache full of live signatures refuses a new one (UNAVAILABLE) and
/// still knows every old one; once they leave the window a new one is accepted and the
/// old ones are refused by their date.
#[tokio::test]
async fn guard_a_full_replay_cache_never_forgets_a_live_signature() {
    let clock = ManualClock::at_unix(NOW);
    let v = verifier(&clock).replay_cache_size(2);
    let (a, b, c) = (signed(DATE, "a"), signed(DATE, "b"), signed(DATE, "c"));
    assert_eq!(check(&v, &a).await, Ok("svc-a".into()));
    assert_eq!(check(&v, &b).await, Ok("svc-a".into()));
    assert_eq!(
        check(&v, &c).await,
        Err((Code::Unavailable, "HMAC replay cache full".into()))
    );
    let replay = unauth("HMAC signature already used (replay)");
    assert_eq!(check(&v, &a).await, replay);
    assert_eq!(check(&v, &b).await, replay);
    clock.advance(Duration::from_secs(302));
    let fresh = signed(&http_date(NOW + 302), "d");
    assert_eq!(check(&v, &fresh).await, Ok("svc-a".into()));
    assert_eq!(
        check(&v, &a).await,
        unauth("date is outside the allowed clock skew of 300 s")
    );
}

// ---------------------------------------------------------------------------
// HMAC: encodings and sizes
// ---------------------------------------------------------------------------

/// Guard: the signature must be standard padded base64 (plain or URL-encoded): the
/// URL-safe alphabet, no padding, inner or surrounding whitespace, non-canonical
/// trailing bits and a `+` sent as a space are refused as malformed.
#[tokio::test]
async fn guard_base64_variants_are_refused() {
    let clock = ManualClock::at_unix(NOW);
    // A nonce whose MAC has both '+' or '/' in its base64 (for the URL-safe case).
    let (nonce, raw) = (0..1000)
        .map(|i| format!("e{i}"))
        .map(|n| {
            let m = sha256(&signing(METHOD, DATE, &n));
            (n, m)
        })
        .find(|(_, m)| {
            let s = STANDARD.encode(m);
            s.contains('+') && s.contains('/')
        })
        .unwrap();
    let b64 = STANDARD.encode(&raw);
    // 32 bytes: 43 characters and one '='; the last character carries 2 unused bits.
    let last = b64.as_bytes()[42];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let idx = alphabet.iter().position(|c| *c == last).unwrap();
    let mut noncanonical = b64.clone().into_bytes();
    noncanonical[42] = alphabet[idx | 1];
    let noncanonical = String::from_utf8(noncanonical).unwrap();
    assert_ne!(noncanonical, b64);
    let variants = [
        URL_SAFE.encode(&raw),
        STANDARD_NO_PAD.encode(&raw),
        format!("{} {}", &b64[..20], &b64[20..]),
        format!(" {b64}"),
        noncanonical,
        b64.replace('+', " "),
        b64.replace('+', "%20"),
        format!("{b64}="),
    ];
    let v = verifier(&clock);
    for sig in variants {
        let auth = authorization(
            "svc-a",
            "hmac-sha256",
            "(request-target) date x-nonce",
            &sig,
        );
        let h = metadata(&[
            ("authorization", &auth),
            ("date", DATE),
            ("x-nonce", &nonce),
        ]);
        assert_eq!(
            check(&v, &h).await,
            unauth("malformed HMAC Signature: signature is not base64"),
            "{sig:?}"
        );
    }
    // The canonical signature is still fresh: none of the variants consumed it.
    let auth = authorization(
        "svc-a",
        "hmac-sha256",
        "(request-target) date x-nonce",
        &b64,
    );
    let h = metadata(&[
        ("authorization", &auth),
        ("date", DATE),
        ("x-nonce", &nonce),
    ]);
    assert_eq!(check(&v, &h).await, Ok("svc-a".into()));
}

/// Guard: sizes are bounded before any key lookup: an `authorization` or a signed header
/// over 8 KiB, more than 32 listed headers, a 33-character parameter name.
#[tokio::test]
async fn guard_sizes_are_bounded() {
    let clock = ManualClock::at_unix(NOW);
    let v = verifier(&clock);
    let sig = STANDARD.encode(sha256(&signing(METHOD, DATE, "z")));
    let huge_key = "k".repeat(9000);
    let auth = authorization(
        &huge_key,
        "hmac-sha256",
        "(request-target) date x-nonce",
        &sig,
    );
    let h = metadata(&[("authorization", &auth), ("date", DATE), ("x-nonce", "z")]);
    assert_eq!(
        check(&v, &h).await,
        unauth("authorization metadata exceeds 8192 bytes")
    );
    let big = "n".repeat(8193);
    let auth = authorization(
        "svc-a",
        "hmac-sha256",
        "(request-target) date x-nonce",
        &sig,
    );
    let h = metadata(&[("authorization", &auth), ("date", DATE), ("x-nonce", &big)]);
    assert_eq!(
        check(&v, &h).await,
        unauth("x-nonce metadata exceeds 8192 bytes")
    );
    let many: Vec<String> = (0..33).map(|i| format!("x-h{i}")).collect();
    let list = format!("(request-target) date {}", many.join(" "));
    let auth = authorization("svc-a", "hmac-sha256", &list, &sig);
    let h = metadata(&[("authorization", &auth), ("date", DATE)]);
    assert_eq!(
        check(&v, &h).await,
        unauth("malformed HMAC Signature: more than 32 signed headers")
    );
    let long = format!(r#"Signature {}="x",keyId="svc-a""#, "p".repeat(33));
    let h = metadata(&[("authorization", &long), ("date", DATE)]);
    assert_eq!(
        check(&v, &h).await,
        unauth("malformed HMAC Signature: parameter name too long")
    );
}

// ---------------------------------------------------------------------------
// The Tyk plugin
// ---------------------------------------------------------------------------

fn plugin(clock: &ManualClock) -> tyk::TykPlugin {
    tyk::TykPlugin::new(&tyk::PluginConfig {
        hmac_keys: vec![("svc-a".into(), SECRET.into())],
        clock: Arc::new(clock.clone()),
        ..Default::default()
    })
}

fn tyk_object(url: &str, method: &str, headers: &[(&str, &str)]) -> Object {
    let mut h: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    h.insert("Host".into(), "gw.test".into());
    Object {
        hook_type: HookType::CustomKeyCheck as i32,
        hook_name: "CustomHMACCheck".into(),
        request: Some(MiniRequestObject {
            headers: h,
            url: url.into(),
            request_uri: url.into(),
            method: method.into(),
            return_overrides: Some(ReturnOverrides {
                response_code: -1,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// (session set, token, response code, response error) of an auth_check reply.
fn tyk_outcome(o: &Object) -> (bool, Option<String>, i32, String) {
    let ov = o
        .request
        .as_ref()
        .and_then(|r| r.return_overrides.clone())
        .unwrap_or_default();
    (
        o.session.is_some(),
        o.session
            .as_ref()
            .and_then(|s| s.metadata.get("token").cloned()),
        ov.response_code,
        ov.response_error,
    )
}

/// A `GET /public` signature over `(request-target) date` (Tyk's format).
fn public_signature() -> String {
    let msg = format!("(request-target): get /public\ndate: {DATE}");
    let sig = STANDARD.encode(sha256(&msg));
    authorization("svc-a", "hmac-sha256", "(request-target) date", &sig)
}

/// Finding: the plugin cuts `url` at the first `://` anywhere in it, taking it for an
/// absolute URL, so a request for `/admin?next=http://x/public` (or `/admin/http://x/public`)
/// is verified as `/public`: a signature bound by `(request-target)` to `GET /public`
/// authorizes `GET /admin...` at the gateway, which the library itself refuses
/// (`HmacVerifier::verify("GET", "/admin?next=http://x/public")` is a mismatch).
#[tokio::test]
async fn finding_tyk_plugin_url_holding_a_scheme_separator_rebinds_the_request_target() {
    let clock = ManualClock::at_unix(NOW);
    let auth = public_signature();
    let headers = [("Authorization", auth.as_str()), ("Date", DATE)];
    // The library: the signature does not cover /admin.
    let mut h = HeaderMap::new();
    h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
    h.insert("date", HeaderValue::from_static(DATE));
    assert_eq!(
        verifier(&clock)
            .verify("GET", "/admin?next=http://x/public", &h)
            .await
            .unwrap_err(),
        HmacError::BadSignature
    );
    for url in ["/admin?next=http://x/public", "/admin/http://x/public"] {
        let reply = plugin(&clock)
            .handle(tyk_object(url, "GET", &headers))
            .await;
        assert_eq!(
            tyk_outcome(&reply),
            (false, None, 401, "HMAC signature mismatch".into()),
            "url {url}"
        );
    }
    // An absolute URL is still cut to its path.
    let reply = plugin(&clock)
        .handle(tyk_object("http://gw.test/public?x=1", "GET", &headers))
        .await;
    assert_eq!(
        tyk_outcome(&reply),
        (true, Some("svc-a".into()), -1, String::new())
    );
}

/// Guard: malformed Objects and hostile inputs never yield a session: no request at
/// all, a pre-set session or token (a request "already authenticated"), an unknown hook
/// type, a huge or non-ASCII `Date` (refused as such), a method in another case, a signature for another
/// method; an `override_error` left by the gateway still gets a failure code.
#[tokio::test]
async fn guard_tyk_plugin_never_authorizes_what_the_library_refuses() {
    let clock = ManualClock::at_unix(NOW);
    let p = plugin(&clock);
    let auth = public_signature();
    // No request at all.
    let reply = p
        .handle(Object {
            hook_type: HookType::CustomKeyCheck as i32,
            ..Default::default()
        })
        .await;
    assert_eq!(
        tyk_outcome(&reply),
        (false, None, 400, "missing authorization metadata".into())
    );
    // A session already present and a bad signature: the session is taken away.
    let mut o = tyk_object(
        "/public",
        "GET",
        &[
            ("Authorization", &auth.replace("svc-a", "svc-b")),
            ("Date", DATE),
        ],
    );
    o.session = Some(SessionState {
        metadata: HashMap::from([("token".into(), "svc-a".into())]),
        ..Default::default()
    });
    o.metadata.insert("token".into(), "svc-a".into());
    if let Some(ov) = o.request.as_mut().and_then(|r| r.return_overrides.as_mut()) {
        ov.override_error = true;
    }
    let reply = p.handle(o).await;
    assert_eq!(
        tyk_outcome(&reply),
        (false, None, 401, "unknown HMAC key id".into())
    );
    // A signature for GET /public on a POST.
    let reply = p
        .handle(tyk_object(
            "/public",
            "POST",
            &[("Authorization", &auth), ("Date", DATE)],
        ))
        .await;
    assert_eq!(
        tyk_outcome(&reply),
        (false, None, 401, "HMAC signature mismatch".into())
    );
    // A huge Date and a non-ASCII one.
    let huge = format!("{DATE}{}", " ".repeat(1 << 20));
    let reply = p
        .handle(tyk_object(
            "/public",
            "GET",
            &[("Authorization", &auth), ("Date", &huge)],
        ))
        .await;
    assert_eq!(
        tyk_outcome(&reply),
        (false, None, 400, "date metadata exceeds 8192 bytes".into())
    );
    let reply = p
        .handle(tyk_object(
            "/public",
            "GET",
            &[("Authorization", &auth), ("Date", &format!("{DATE}\u{e9}"))],
        ))
        .await;
    assert_eq!(
        tyk_outcome(&reply),
        (false, None, 400, "date metadata is not valid ASCII".into())
    );
    // Header names differing in case only are both kept: repeated, refused.
    let reply = p
        .handle(tyk_object(
            "/public",
            "GET",
            &[("Authorization", &auth), ("Date", DATE), ("date", DATE)],
        ))
        .await;
    assert_eq!(
        tyk_outcome(&reply),
        (false, None, 400, "multiple date metadata entries".into())
    );
    // An unknown hook type comes back unchanged, no session added.
    let mut o = tyk_object(
        "/public",
        "GET",
        &[("Authorization", &auth), ("Date", DATE)],
    );
    o.hook_type = 99;
    let reply = p.handle(o.clone()).await;
    assert_eq!(reply, o);
    // The right request, the method in lower case: accepted once, then a replay.
    let right = tyk_object(
        "/public",
        "get",
        &[("Authorization", &auth), ("Date", DATE)],
    );
    assert_eq!(
        tyk_outcome(&p.handle(right.clone()).await),
        (true, Some("svc-a".into()), -1, String::new())
    );
    assert_eq!(
        tyk_outcome(&p.handle(right).await),
        (
            false,
            None,
            401,
            "HMAC signature already used (replay)".into()
        )
    );
}

// ---------------------------------------------------------------------------
// Token exchange: the certificate binding of commit d95cafe
// ---------------------------------------------------------------------------

const HELLO: &str = "/helloworld.Greeter/SayHello";
const GRPC: (&str, &str) = ("content-type", "application/grpc");
const IDP_SECRET: &str = "review-14-idp-secret-0123456789abcdef";
const TOKEN_SECRET: &[u8] = b"review-14-token-secret-0123456789abc";

fn idp(clock: &ManualClock) -> JwtAuthenticator {
    JwtAuthenticator::new(StaticKeys::from(
        JwtKey::secret(Algorithm::HS256, IDP_SECRET.as_bytes()).unwrap(),
    ))
    .clock(clock.clone())
}

fn signed_tokens(clock: &ManualClock) -> SignedTokens {
    SignedTokens::new(TokenKeys::hs256("k1", TOKEN_SECRET).unwrap(), "greeter").clock(clock.clone())
}

fn opaque_tokens(
    clock: &ManualClock,
) -> OpaqueTokens<grpc_auth::authn::token_exchange::MemoryTokenStore> {
    OpaqueTokens::new(
        grpc_auth::authn::token_exchange::MemoryTokenStore::default(),
        "greeter",
    )
    .clock(clock.clone())
}

fn thumbprint(pem: &str) -> String {
    use sha2::Digest as _;
    let b64: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    let der = STANDARD.decode(b64).unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der))
}

/// Logs in with `login_headers` over `cert`, then presents the issued token with `with`.
async fn login_then_present(
    server: &impl Authorization,
    login_headers: &[(&str, &str)],
    cert: &str,
    with: Option<&str>,
) -> (i32, String) {
    let mut h = vec![GRPC];
    h.extend_from_slice(login_headers);
    let r = ask(server, check_request(HELLO, &h, Some(cert))).await;
    assert_eq!(code_and_message(&r).0, 0, "login: {r:?}");
    let token = issued(&r).expect("an issued token");
    code_and_message(
        &ask(
            server,
            check_request(HELLO, &[GRPC, ("authorization", &token)], with),
        )
        .await,
    )
}

/// Finding: a login that needs the client certificate *with* a password
/// (`BasicAuthenticator.and(MtlsAuthenticator)`) gets a token bound to nothing: `and`
/// keeps the first principal's claims, so the mTLS `x5t#S256` is dropped before
/// `login_binding` looks for it, and the token replays from any connection, with no
/// certificate at all. The login proved the certificate; its token must stay bound.
#[tokio::test]
async fn finding_a_basic_and_mtls_login_gets_an_unbound_token() {
    let pki = tls::test_pki();
    let (cert, _) = pki.client_cert(&["spiffe://prod.test/ns/billing/sa/api"], &[], "api");
    let clock = ManualClock::at_unix(tokens::now() as u64);
    let basic = format!("Basic {}", STANDARD.encode("ada:pw-ada"));
    let login = || {
        BasicAuthenticator::new()
            .user("ada", "pw-ada")
            .and(MtlsAuthenticator::new())
    };
    let opaque = ExtAuthzServer::new(AuthLayer::new(
        TokenExchange::new(login(), opaque_tokens(&clock)).boxed(),
    ));
    let signed = ExtAuthzServer::new(AuthLayer::new(
        TokenExchange::new(login(), signed_tokens(&clock)).boxed(),
    ));
    for (name, server) in [("opaque", opaque), ("signed", signed)] {
        assert_eq!(
            login_then_present(&server, &[("authorization", &basic)], &cert, None).await,
            (
                16,
                "certificate-bound token presented without a client certificate".into()
            ),
            "{name}"
        );
    }
}

/// Finding: a JWT login combined with mTLS (`jwt.and(mtls)`) whose token carries a
/// top-level `x5t#S256` claim (any claim an IdP lets a user set, or a token minted for
/// another workload) binds the exchanged token to *that* thumbprint, not to the
/// certificate the connection presented: the token then works with the other
/// certificate and not with the login's own. `login_binding` trusts an `x5t#S256`
/// claim from any scheme, not only from the mTLS principal.
#[tokio::test]
async fn finding_a_smuggled_x5t_claim_rebinds_the_exchanged_token() {
    let pki = tls::test_pki();
    let (cert, _) = pki.client_cert(&["spiffe://prod.test/ns/billing/sa/api"], &[], "api");
    let (other, _) = pki.client_cert(&["spiffe://prod.test/ns/evil/sa/x"], &[], "x");
    let clock = ManualClock::at_unix(tokens::now() as u64);
    let jwt = tokens::hs256(
        IDP_SECRET,
        &json!({
            "sub": "ada",
            "exp": clock.unix_seconds() + 3600,
            "x5t#S256": thumbprint(&other),
        }),
    );
    let bearer = format!("Bearer {jwt}");
    let opaque = ExtAuthzServer::new(AuthLayer::new(
        TokenExchange::new(
            idp(&clock).and(MtlsAuthenticator::new()),
            opaque_tokens(&clock),
        )
        .boxed(),
    ));
    let signed = ExtAuthzServer::new(AuthLayer::new(
        TokenExchange::new(
            idp(&clock).and(MtlsAuthenticator::new()),
            signed_tokens(&clock),
        )
        .boxed(),
    ));
    for (name, server) in [("opaque", opaque), ("signed", signed)] {
        assert_eq!(
            login_then_present(&server, &[("authorization", &bearer)], &cert, Some(&other)).await,
            (
                16,
                "certificate-bound token presented with another certificate".into()
            ),
            "{name}"
        );
    }
}

/// Guard: with mTLS first (`mtls.and(jwt)`), a JWT's smuggled `x5t#S256` changes
/// nothing: the token is bound to the connection's certificate, refused with the other.
#[tokio::test]
async fn guard_mtls_first_keeps_the_connection_binding() {
    let pki = tls::test_pki();
    let (cert, _) = pki.client_cert(&["spiffe://prod.test/ns/billing/sa/api"], &[], "api");
    let (other, _) = pki.client_cert(&["spiffe://prod.test/ns/evil/sa/x"], &[], "x");
    let clock = ManualClock::at_unix(tokens::now() as u64);
    let jwt = tokens::hs256(
        IDP_SECRET,
        &json!({
            "sub": "ada",
            "exp": clock.unix_seconds() + 3600,
            "x5t#S256": thumbprint(&other),
        }),
    );
    let bearer = format!("Bearer {jwt}");
    let server = ExtAuthzServer::new(AuthLayer::new(
        TokenExchange::new(
            MtlsAuthenticator::new().and(idp(&clock)),
            signed_tokens(&clock),
        )
        .boxed(),
    ));
    assert_eq!(
        login_then_present(&server, &[("authorization", &bearer)], &cert, Some(&other)).await,
        (
            16,
            "certificate-bound token presented with another certificate".into()
        )
    );
    assert_eq!(
        login_then_present(&server, &[("authorization", &bearer)], &cert, Some(&cert)).await,
        (0, String::new())
    );
}
