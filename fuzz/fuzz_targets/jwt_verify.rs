//! JWT verification: header, payload and signature decoding, key choice and claims.
//!
//! The first byte picks the mode and variants:
//! - bit 0 clear: the rest is a token, verified against static HS256, RS256 and ES256
//!   keys. It must never verify unless it is really HS256-signed with the known secret
//!   (the fuzzer cannot forge RS256/ES256, nor an HMAC by chance).
//! - bit 0 set: a token is built and HS256-signed here, so the signature passes and
//!   the header (`alg`, `kid`, `crit`) and claims logic is what decides.
//!   - bit 5 clear: the rest is `header JSON \0 payload JSON`;
//!     bit 5 set: the header is one of four canonical ones (bits 6-7) and the rest is
//!     the payload; then acceptance must match the claims rules exactly, both ways.
//!   - bit 1: signed with another secret (must fail).
//!   - bits 2-3: 1 pads the signature with `=`, 2 pads the payload, 3 the header
//!     (padding is signed over in 2 and 3); every padded token must fail.
//!
//! Every token also goes through `Authenticator::authenticate` (`Bearer`, verified-token
//! cache on), which must agree with `verify`.
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use grpc_auth::authn::jwt::{JwtKey, StaticKeys};
use grpc_auth::authn::{AuthRequest, Authenticator, JwtAuthenticator};
use grpc_auth::clock::ManualClock;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use sha2::Sha256;

const NOW: u64 = 1_700_000_000;
const SECRET: &[u8] = b"grpc-auth-fuzz-hs256-secret-0123456789abcdef";
const WRONG_SECRET: &[u8] = b"grpc-auth-fuzz-another-secret-0123456789abcd";
const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "fuzz-aud";
const RSA_PUBLIC: &[u8] = include_bytes!("../../tests/keys/rsa_public.pem");
const EC256_PUBLIC: &[u8] = include_bytes!("../../tests/keys/ec256_public.pem");

const CANONICAL_HEADERS: [&str; 4] = [
    r#"{"alg":"HS256","typ":"JWT"}"#,
    r#"{"alg":"HS256"}"#,
    r#"{"alg":"HS256","kid":"hs"}"#,
    r#"{"typ":"JWT","kid":"hs","alg":"HS256"}"#,
];

/// One authenticator configuration and what the claims oracle needs of it.
struct Config {
    auth: JwtAuthenticator,
    issuers: &'static [&'static str],
    audiences: &'static [&'static str],
    required: &'static [&'static str],
    leeway: u64,
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    /// HS256 (kid "hs"), RS256 (kid "rs"), ES256 (kid "es"); default claims rules.
    plain: Config,
    /// HS256 only; issuer, audience, nbf and a custom claim required; no leeway.
    strict: Config,
    /// `plain`'s keys with the verified-token cache on, for the metadata path.
    cached: JwtAuthenticator,
}

fn keys() -> StaticKeys {
    StaticKeys::new()
        .with(
            JwtKey::secret(Algorithm::HS256, SECRET)
                .unwrap()
                .with_kid("hs"),
        )
        .with(
            JwtKey::from_pem(Algorithm::RS256, RSA_PUBLIC)
                .unwrap()
                .with_kid("rs"),
        )
        .with(
            JwtKey::from_pem(Algorithm::ES256, EC256_PUBLIC)
                .unwrap()
                .with_kid("es"),
        )
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let clock = ManualClock::at_unix(NOW);
        let plain = JwtAuthenticator::new(keys())
            .clock(clock.clone())
            .no_cache();
        let strict_required: &'static [&'static str] =
            &["exp", "sub", "iss", "aud", "nbf", "tenant"];
        let strict = JwtAuthenticator::new(StaticKeys::from(
            JwtKey::secret(Algorithm::HS256, SECRET)
                .unwrap()
                .with_kid("hs"),
        ))
        .clock(clock.clone())
        .no_cache()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .required_claims(strict_required.iter().copied())
        .leeway(std::time::Duration::ZERO);
        Fixture {
            rt: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
            plain: Config {
                auth: plain,
                issuers: &[],
                audiences: &[],
                required: &["exp", "sub"],
                leeway: 60,
            },
            strict: Config {
                auth: strict,
                issuers: &[ISSUER],
                audiences: &[AUDIENCE],
                required: strict_required,
                leeway: 0,
            },
            cached: JwtAuthenticator::new(keys()).clock(clock),
        }
    })
}

fn public_verify(signature: &str, message: &str, alg: Algorithm) -> bool {
    let key = match alg {
        Algorithm::RS256 => jsonwebtoken::DecodingKey::from_rsa_pem(RSA_PUBLIC),
        _ => jsonwebtoken::DecodingKey::from_ec_pem(EC256_PUBLIC),
    }
    .unwrap();
    jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key, alg).unwrap_or(false)
}

fn hs256(secret: &[u8], message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(message.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// What the claims rules (module docs of `authn::jwt`) say about a token whose
/// signature is good: `Ok` with the expected principal, or why it must be refused.
#[derive(Debug, PartialEq)]
struct Expected {
    subject: String,
    scopes: Vec<String>,
    roles: Vec<String>,
    expires_at: Option<u64>,
    claims: Map<String, Value>,
}

/// The keys as (alg, kid): `plain` has all three, `strict` the HS256 one.
const PLAIN_KEYS: &[(&str, &str)] = &[("HS256", "hs"), ("RS256", "rs"), ("ES256", "es")];
const STRICT_KEYS: &[(&str, &str)] = &[("HS256", "hs")];

/// The header rules: a JSON object whose `alg` one of `keys` allows, no `crit`, and a
/// `kid` (if any) naming that key.
fn header_ok(header: &[u8], keys: &[(&str, &str)]) -> Result<(), &'static str> {
    /// The header parameters the rules name, read as fields of a JSON object (the
    /// others are skipped, as the authenticator's header type skips them).
    #[derive(serde::Deserialize)]
    struct H {
        alg: Option<Value>,
        kid: Option<Value>,
        crit: Option<Value>,
    }
    if header.trim_ascii_start().first() != Some(&b'{') {
        return Err("header is not a JSON object");
    }
    let Ok(h) = serde_json::from_slice::<H>(header) else {
        return Err("header is not a JSON object");
    };
    let Some((_, kid)) = keys
        .iter()
        .find(|(alg, _)| h.alg.as_ref().and_then(Value::as_str) == Some(alg))
    else {
        return Err("no key for alg");
    };
    if h.crit.as_ref().is_some_and(|c| !c.is_null()) {
        return Err("crit");
    }
    match h.kid {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(k)) if k == *kid => Ok(()),
        Some(_) => Err("kid does not name the alg's key"),
    }
}

fn numeric(v: Option<&Value>) -> Result<Option<u64>, &'static str> {
    match v {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or("not a NumericDate"),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// A JSON object whose names are all distinct (RFC 7519 section 4: a payload with a
/// repeated claim name is refused, so no two parsers disagree on which `sub` it has).
struct Unique(Map<String, Value>);

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Unique;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Unique, A::Error> {
                let mut all = Map::new();
                while let Some((k, v)) = m.next_entry::<String, Value>()? {
                    if all.insert(k, v).is_some() {
                        return Err(serde::de::Error::custom("repeated name"));
                    }
                }
                Ok(Unique(all))
            }
        }
        d.deserialize_map(V)
    }
}

/// The claims rules (module docs of `authn::jwt`): the payload is a JSON object with
/// distinct names, parsed whole; required claims present and not null; `exp`/`nbf`
/// (when present, even as null) non-negative numbers with `now` inside them up to the
/// leeway; `iss`/`aud` when configured; `sub` absent or a string.
fn claims_ok(cfg: &Config, payload: &[u8]) -> Result<Expected, &'static str> {
    if payload.trim_ascii_start().first() != Some(&b'{') {
        return Err("payload is not a JSON object");
    }
    let Ok(Unique(all)) = serde_json::from_slice::<Unique>(payload) else {
        return Err("payload is not a JSON object with distinct names");
    };
    let get = |k: &str| all.get(k);
    for name in cfg.required {
        if get(name).is_none_or(Value::is_null) {
            return Err("missing required claim");
        }
    }
    let exp = numeric(get("exp"))?;
    if exp.is_some_and(|e| NOW > e.saturating_add(cfg.leeway)) {
        return Err("expired");
    }
    if numeric(get("nbf"))?.is_some_and(|n| NOW.saturating_add(cfg.leeway) < n) {
        return Err("not yet valid");
    }
    if !cfg.issuers.is_empty() {
        match get("iss") {
            Some(Value::String(i)) if cfg.issuers.contains(&i.as_str()) => {}
            _ => return Err("issuer"),
        }
    }
    if !cfg.audiences.is_empty() {
        let ok = match get("aud") {
            Some(Value::String(a)) => cfg.audiences.contains(&a.as_str()),
            Some(Value::Array(a)) => a
                .iter()
                .any(|a| a.as_str().is_some_and(|a| cfg.audiences.contains(&a))),
            _ => false,
        };
        if !ok {
            return Err("audience");
        }
    }
    let subject = match get("sub") {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("sub is not a string"),
    };
    let mut scopes = strings(get("scope"));
    scopes.extend(strings(get("scp")));
    let roles = strings(get("roles"));
    Ok(Expected {
        subject,
        scopes,
        roles,
        expires_at: exp,
        claims: all,
    })
}

fn check_principal(got: &grpc_auth::authn::jwt::Verified, want: &Expected) {
    let p = &got.principal;
    assert_eq!(p.subject(), want.subject);
    assert_eq!(p.scheme(), "jwt");
    assert_eq!(p.scopes(), want.scopes.as_slice());
    assert_eq!(p.roles(), want.roles.as_slice());
    assert_eq!(got.expires_at, want.expires_at);
    assert_eq!(p.claims(), &want.claims);
}

/// The metadata path (cache on) agrees with `verify`.
fn check_metadata_path(f: &Fixture, token: &str, verified: Option<&str>) {
    if token.is_empty() || token.trim() != token || token.len() > 8000 {
        return;
    }
    let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, value);
    let req = AuthRequest::new("/a.B/C", &headers);
    for _ in 0..2 {
        let got = f.rt.block_on(f.cached.authenticate(&req));
        match (verified, got) {
            (Some(sub), Ok(Some(a))) => assert_eq!(a.principal.subject(), sub),
            (None, Err(_)) => {}
            (v, g) => panic!("metadata path disagrees: verify {v:?}, authenticate {g:?}"),
        }
    }
}

fn arbitrary_token(f: &Fixture, token: &str) {
    for cfg in [&f.plain, &f.strict] {
        let Ok(v) = f.rt.block_on(cfg.auth.verify(token)) else {
            continue;
        };
        // Accepted: it must really be an HS256 token signed with SECRET.
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            panic!("accepted a token without exactly three segments");
        };
        assert!(!token.contains('='), "accepted a padded token");
        // One spelling per token: every segment is canonical base64url.
        let canonical = |seg: &str| {
            let raw = URL_SAFE_NO_PAD
                .decode(seg)
                .expect("accepted a segment that is not base64url");
            assert_eq!(
                URL_SAFE_NO_PAD.encode(&raw),
                seg,
                "accepted non-canonical base64url"
            );
            raw
        };
        let (header, payload) = (canonical(h), canonical(p));
        canonical(s);
        let keys = if std::ptr::eq(cfg, &f.plain) {
            PLAIN_KEYS
        } else {
            STRICT_KEYS
        };
        header_ok(&header, keys).expect("accepted header");
        // The signature is good under the key of the header's alg: HS256 checked
        // here independently, RS256/ES256 (which the fuzzer cannot forge; the seeds
        // carry real ones) with jsonwebtoken's primitive and the public key.
        let message = &token[..h.len() + 1 + p.len()];
        #[derive(serde::Deserialize)]
        struct Alg {
            alg: String,
        }
        let alg = serde_json::from_slice::<Alg>(&header).expect("accepted header without alg");
        match Some(alg.alg.as_str()) {
            Some("HS256") => assert_eq!(s, hs256(SECRET, message), "forged HS256 token accepted"),
            Some("RS256") => assert!(public_verify(s, message, Algorithm::RS256), "forged RS256"),
            Some("ES256") => assert!(public_verify(s, message, Algorithm::ES256), "forged ES256"),
            other => panic!("accepted alg {other:?}"),
        }
        match claims_ok(cfg, &payload) {
            Ok(want) => check_principal(&v, &want),
            Err(why) => panic!("accepted claims the rules refuse: {why}"),
        }
    }
    let verified = f.rt.block_on(f.plain.auth.verify(token)).ok();
    check_metadata_path(f, token, verified.as_ref().map(|v| v.principal.subject()));
}

fn signed_token(f: &Fixture, flags: u8, rest: &[u8]) {
    let canonical = flags & 0x20 != 0;
    let (header, payload): (&[u8], &[u8]) = if canonical {
        (CANONICAL_HEADERS[usize::from(flags >> 6)].as_bytes(), rest)
    } else {
        match rest.iter().position(|&b| b == 0) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, b"{}"),
        }
    };
    let wrong_key = flags & 0x02 != 0;
    let padding = (flags >> 2) & 0x03;
    let (mut h, mut p) = (
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload),
    );
    match padding {
        2 => p.push('='),
        3 => h.push('='),
        _ => {}
    }
    let message = format!("{h}.{p}");
    let mut token = format!(
        "{message}.{}",
        hs256(if wrong_key { WRONG_SECRET } else { SECRET }, &message)
    );
    if padding == 1 {
        token.push('=');
    }
    let must_fail = wrong_key || padding != 0;

    let mut subject = None;
    for (i, cfg) in [&f.plain, &f.strict].into_iter().enumerate() {
        let got = f.rt.block_on(cfg.auth.verify(&token));
        // Signed here with the HMAC secret: only the HS256 key may verify it (an
        // RS256/ES256 header over an HMAC must fail: no algorithm confusion).
        let want = header_ok(header, STRICT_KEYS).and_then(|()| claims_ok(cfg, payload));
        match (&got, &want) {
            (Ok(_), _) if must_fail => panic!("accepted a tampered token (flags {flags:#04x})"),
            (Ok(v), Ok(w)) => check_principal(v, w),
            (Ok(_), Err(why)) => panic!("accepted a token the rules refuse: {why}"),
            (Err(e), Ok(_)) if canonical && !must_fail => {
                panic!("refused a token the rules accept: {e}")
            }
            (Err(_), _) => {}
        }
        if i == 0 {
            subject = got.ok().map(|v| v.principal.subject().to_owned());
        }
    }
    check_metadata_path(f, &token, subject.as_deref());
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    if flags & 1 == 0 {
        arbitrary_token(f, &String::from_utf8_lossy(rest));
    } else {
        signed_token(f, flags, rest);
    }
});
