//! Property tests over the parsers and verifiers, through the public API only.
//!
//! - No panic on arbitrary input, and arbitrary input never authenticates: the
//!   `authorization` parser, JWT verification (HS256, static key), the HMAC
//!   `Signature` verifier (every header from arbitrary bytes), Basic, API keys, the
//!   composition of all four, and policy patterns.
//! - Round trips: a token signed with the key (random claims within bounds) verifies
//!   to the right principal; whatever `HmacSigner` produces `HmacVerifier` accepts
//!   (once: the second use is a replay); Basic credentials from arbitrary user and
//!   password are accepted.
//! - Mutations: any single-byte change anywhere in a signed JWT is rejected (also when
//!   the original is in the verified-token cache); any single-byte change to an HMAC
//!   signature, to a signed header value (`date`, `x-nonce`) or to the method path is
//!   rejected. The one allowed exception is documented: the URL-encoded signature's
//!   `%XX` escapes are case-insensitive, so flipping the case of a hex letter spells
//!   the same MAC (then only the replay cache refuses it, which is checked).
//! - One spelling per token: a JWT segment re-spelled (`=` padding, non-zero unused
//!   bits) and then signed validly over that text is refused as malformed; a validly
//!   signed header with any `crit` is refused.
//!
//! Case counts are kept moderate so the file runs in well under a minute in debug;
//! `PROPTEST_CASES=20000 cargo test --release --test proptest_parsers` for a long run.

use std::future::Future;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use grpc_auth::authn::hmac::{
    HmacAlgorithm, HmacAuthenticator, HmacError, HmacVerifier, StaticHmacKeys,
};
use grpc_auth::authn::jwt::{JwtAuthenticator, JwtKey, StaticKeys};
use grpc_auth::authn::{ApiKeyAuthenticator, AuthRequest, Authorization, BasicAuthenticator};
use grpc_auth::clock::ManualClock;
use grpc_auth::credentials::HmacSigner;
use grpc_auth::{AuthError, Authenticator, Policy, Rule};
use http::{HeaderMap, HeaderName, HeaderValue};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;
use serde_json::{Value, json};

const NOW: u64 = 1_700_000_000;
const JWT_SECRET: &[u8] = b"proptest-jwt-secret-0123456789abcdef";
const ISS: &str = "https://issuer.test";
const AUD: &str = "greeter";
const PATH: &str = "/helloworld.Greeter/SayHello";

/// `cases` per property; `PROPTEST_CASES` overrides it for a longer local run.
fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        // Regressions are reported in the failure message; nothing is written next to
        // the test sources.
        failure_persistence: None,
        ..Config::default()
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime");
    }
    RT.with(|rt| rt.block_on(f))
}

// ---------------------------------------------------------------------------------
// Strategies

/// A byte a metadata value may hold (`HeaderValue::from_bytes` accepts it): visible
/// ASCII and space, tab, and obs-text.
fn header_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        8 => 0x20u8..=0x7e,
        1 => Just(b'\t'),
        2 => 0x80u8..=0xff,
    ]
}

fn header_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(header_byte(), 0..max)
}

/// Arbitrary text, biased towards the shapes the parsers split on.
fn credential_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ \t]{0,2}[A-Za-z]{0,10}[ \t]{0,3}[ -~]{0,80}",
        "(Bearer|bearer|Basic|BASIC|Signature|Digest)[ \t]{1,2}[ -~]{0,120}",
        "[A-Za-z0-9_=-]{0,40}\\.[A-Za-z0-9_=-]{0,60}\\.[A-Za-z0-9_=+/-]{0,50}",
    ]
}

/// A metadata value from arbitrary bytes (valid for a `HeaderValue`), or from text.
fn header_value() -> impl Strategy<Value = HeaderValue> {
    prop_oneof![
        header_bytes(300),
        credential_text().prop_map(String::into_bytes),
        // Past the default size bound.
        (DEFAULT_MAX_VALUE_LEN - 2..DEFAULT_MAX_VALUE_LEN + 8).prop_map(|n| vec![b'a'; n]),
    ]
    .prop_filter_map("not a metadata value", |b| HeaderValue::from_bytes(&b).ok())
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Claims within bounds: a valid token for `ISS`/`AUD` at `NOW`.
#[derive(Debug, Clone)]
struct Claims {
    sub: String,
    exp_in: u64,
    nbf_ago: Option<u64>,
    scopes: Vec<String>,
    roles: Vec<String>,
    aud_array: bool,
    extra: String,
}

impl Claims {
    fn json(&self) -> Value {
        let mut c = json!({
            "sub": self.sub,
            "iss": ISS,
            "aud": if self.aud_array { json!(["other", AUD]) } else { json!(AUD) },
            "iat": NOW,
            "exp": NOW + self.exp_in,
            "extra": self.extra,
        });
        if let Some(ago) = self.nbf_ago {
            c["nbf"] = json!(NOW - ago);
        }
        if !self.scopes.is_empty() {
            c["scope"] = json!(self.scopes.join(" "));
        }
        if !self.roles.is_empty() {
            c["roles"] = json!(self.roles);
        }
        c
    }
}

fn claims() -> impl Strategy<Value = Claims> {
    (
        prop::collection::vec(any::<char>(), 1..40).prop_map(String::from_iter),
        1u64..10_000_000,
        prop::option::of(0u64..1_000_000),
        prop::collection::vec("[a-z.:]{1,12}", 0..4),
        prop::collection::vec(any::<String>(), 0..3),
        any::<bool>(),
        any::<String>(),
    )
        .prop_map(
            |(sub, exp_in, nbf_ago, scopes, roles, aud_array, extra)| Claims {
                sub,
                exp_in,
                nbf_ago,
                scopes,
                roles,
                aud_array,
                extra,
            },
        )
}

fn sign_jwt(claims: &Value) -> String {
    install_jwt_provider();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(JWT_SECRET),
    )
    .expect("sign HS256")
}

fn jwt() -> JwtAuthenticator {
    let key = JwtKey::secret(Algorithm::HS256, JWT_SECRET).expect("HS256 key");
    JwtAuthenticator::new(StaticKeys::from(key))
        .issuer(ISS)
        .audience(AUD)
        .clock(ManualClock::at_unix(NOW))
}

fn hmac_verifier(clock: &ManualClock) -> HmacVerifier {
    HmacVerifier::new(StaticHmacKeys::new().key("svc-a", "s3cret-a")).clock(clock.clone())
}

fn basic() -> BasicAuthenticator {
    BasicAuthenticator::new()
        .user("ada", "lovelace")
        .user("grace", "hopper")
}

fn request_with(name: &'static str, value: HeaderValue) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(HeaderName::from_static(name), value);
    h
}

/// `s` with byte `at` replaced by `with`.
fn replaced(s: &[u8], at: usize, with: u8) -> Vec<u8> {
    let mut v = s.to_vec();
    if let Some(b) = v.get_mut(at) {
        *b = with;
    }
    v
}

// ---------------------------------------------------------------------------------
// The `authorization` parser

proptest! {
    #![proptest_config(config(512))]

    /// Arbitrary metadata: `AuthRequest::authorization` never panics, and what it
    /// returns is well-formed; errors never echo the value.
    #[test]
    fn authorization_parser_takes_arbitrary_metadata(
        values in prop::collection::vec(header_value(), 0..3),
        max_len in prop::option::of(0usize..600),
    ) {
        let mut h = HeaderMap::new();
        for v in &values {
            h.append(http::header::AUTHORIZATION, v.clone());
        }
        let mut req = AuthRequest::new(PATH, &h);
        if let Some(max) = max_len {
            req = req.with_max_value_len(max);
        }
        match req.authorization() {
            Ok(None) => prop_assert!(values.is_empty()),
            Ok(Some(a)) => {
                prop_assert_eq!(values.len(), 1);
                prop_assert!(!a.scheme().is_empty());
                prop_assert!(!a.scheme().contains([' ', '\t']));
                prop_assert!(!a.credentials().is_empty());
                prop_assert_eq!(a.credentials(), a.credentials().trim());
                prop_assert!(a.is_scheme(&a.scheme().to_ascii_uppercase()));
            }
            Err(e) => {
                prop_assert_eq!(e.code(), tonic::Code::Unauthenticated);
                let msg = e.to_string();
                for v in &values {
                    if v.len() >= 12 {
                        prop_assert!(!msg.as_bytes().windows(v.len()).any(|w| w == v.as_bytes()));
                    }
                }
            }
        }
    }

    /// `Authorization::parse` on arbitrary text: never panics; on success the scheme
    /// and credentials are trimmed, non-empty pieces of the input.
    #[test]
    fn authorization_parse_takes_arbitrary_text(text in credential_text()) {
        if let Ok(a) = Authorization::parse(&text) {
            prop_assert!(!a.scheme().is_empty() && !a.credentials().is_empty());
            prop_assert!(text.contains(a.scheme()) && text.contains(a.credentials()));
            // Debug redacts the credentials (checked where they cannot occur by accident).
            let creds = a.credentials();
            if creds.len() >= 12
                && creds.bytes().all(|b| b.is_ascii_alphanumeric())
                && !a.scheme().contains(creds)
            {
                let debug = format!("{a:?}");
                prop_assert!(!debug.contains(creds));
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// JWT

/// A `Bearer` request to the JWT authenticator: must be rejected (never absent, never
/// accepted).
fn bearer_rejected(auth: &JwtAuthenticator, token: &[u8]) -> Result<(), TestCaseError> {
    let mut value = b"Bearer ".to_vec();
    value.extend_from_slice(token);
    let Ok(value) = HeaderValue::from_bytes(&value) else {
        return Ok(());
    };
    let h = request_with("authorization", value);
    let r = block_on(auth.authenticate(&AuthRequest::new(PATH, &h)));
    // Even a token that trims to nothing is refused ("scheme has no credentials").
    prop_assert!(
        r.is_err(),
        "accepted or absent: {:?}",
        r.map(|o| o.map(|a| a.principal))
    );
    Ok(())
}

fn jwt_segments() -> impl Strategy<Value = String> {
    let header = prop_oneof![
        Just(b64url(br#"{"alg":"HS256","typ":"JWT"}"#)),
        Just(b64url(br#"{"alg":"none"}"#)),
        Just(b64url(br#"{"alg":"HS256","crit":["b64"],"b64":false}"#)),
        Just(b64url(br#"{"alg":"RS256"}"#)),
        prop::collection::vec(any::<u8>(), 0..60).prop_map(|b| b64url(&b)),
        "[A-Za-z0-9_=+/.-]{0,40}",
    ];
    let payload = prop_oneof![
        Just(b64url(
            json!({"sub": "mallory", "iss": ISS, "aud": AUD, "exp": NOW + 600})
                .to_string()
                .as_bytes()
        )),
        prop::collection::vec(any::<u8>(), 0..120).prop_map(|b| b64url(&b)),
        "[A-Za-z0-9_=-]{0,80}",
    ];
    let signature = prop_oneof![
        Just(String::new()),
        prop::collection::vec(any::<u8>(), 0..70).prop_map(|b| b64url(&b)),
        prop::collection::vec(any::<u8>(), 32..=32).prop_map(|b| b64url(&b) + "="),
        "[A-Za-z0-9_=+/.-]{0,60}",
    ];
    (header, payload, signature).prop_map(|(h, p, s)| format!("{h}.{p}.{s}"))
}

proptest! {
    #![proptest_config(config(512))]

    /// Arbitrary tokens (free text, or three segments built from pieces of real and
    /// forged headers, payloads and signatures) are never accepted and never panic.
    #[test]
    fn jwt_verify_rejects_arbitrary_tokens(
        token in prop_oneof![credential_text(), jwt_segments()],
    ) {
        let auth = jwt();
        let r = block_on(auth.verify(&token));
        prop_assert!(r.is_err(), "accepted {token:?}");
        let r = block_on(auth.verify_cached(&token));
        prop_assert!(r.is_err(), "accepted (cached path) {token:?}");
        bearer_rejected(&auth, token.as_bytes())?;
    }

    /// Arbitrary bytes in a validly signed payload: never a panic; accepted only when
    /// the payload is a JSON object carrying the right claims, with `sub` as subject.
    #[test]
    fn jwt_signed_arbitrary_payload(
        payload in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            any::<String>().prop_map(String::into_bytes),
            Just(br#"{"sub":"x","exp":1e400}"#.to_vec()),
            Just(br#"{"sub":"x","exp":-1,"iss":"https://issuer.test","aud":"greeter"}"#.to_vec()),
        ],
    ) {
        install_jwt_provider();
        let header = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
        let message = format!("{header}.{}", b64url(&payload));
        let sig = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(JWT_SECRET),
            Algorithm::HS256,
        )
        .expect("sign");
        let token = format!("{message}.{sig}");
        if let Ok(v) = block_on(jwt().verify(&token)) {
            let claims: Result<Value, _> = serde_json::from_slice(&payload);
            prop_assert!(claims.is_ok(), "accepted a payload that is not JSON");
            let claims = claims.unwrap_or_default();
            prop_assert_eq!(claims.get("sub").and_then(Value::as_str), Some(v.principal.subject()));
            prop_assert_eq!(claims.get("iss").and_then(Value::as_str), Some(ISS));
        }
    }

    /// Round trip: what jsonwebtoken signs with the key verifies, to the right subject,
    /// scopes and roles; through the cache too.
    #[test]
    fn jwt_signed_tokens_verify(c in claims()) {
        let token = sign_jwt(&c.json());
        let auth = jwt();
        let v = block_on(auth.verify(&token));
        prop_assert!(v.is_ok(), "refused: {:?}", v.as_ref().err());
        let Ok(v) = v else { return Ok(()) };
        prop_assert_eq!(v.principal.subject(), c.sub.as_str());
        prop_assert_eq!(v.principal.scheme(), "jwt");
        prop_assert_eq!(v.principal.scopes(), c.scopes.as_slice());
        prop_assert_eq!(v.principal.roles(), c.roles.as_slice());
        prop_assert_eq!(v.expires_at, Some(NOW + c.exp_in));
        prop_assert_eq!(
            v.principal.claims().get("extra").and_then(Value::as_str),
            Some(c.extra.as_str())
        );
        for _ in 0..2 {
            let p = block_on(auth.verify_cached(&token));
            prop_assert_eq!(p.map(|p| p.subject().to_owned()), Ok(c.sub.clone()));
        }
        let h = request_with(
            "authorization",
            HeaderValue::try_from(format!("Bearer {token}")).expect("header"),
        );
        let r = block_on(auth.authenticate(&AuthRequest::new(PATH, &h)));
        prop_assert_eq!(
            r.map(|o| o.map(|a| a.principal.subject().to_owned())),
            Ok(Some(c.sub.clone()))
        );
    }

    /// Any single-byte change anywhere in a signed token is rejected, by `verify`, by
    /// `verify_cached` with the original already cached, and through the layer's path.
    #[test]
    fn jwt_any_single_byte_change_is_rejected(
        c in claims(),
        at in any::<Index>(),
        with in header_byte(),
    ) {
        let token = sign_jwt(&c.json());
        let at = at.index(token.len());
        prop_assume!(token.as_bytes()[at] != with);
        let auth = jwt();
        prop_assert!(block_on(auth.verify_cached(&token)).is_ok());
        let bad = replaced(token.as_bytes(), at, with);
        if let Ok(bad) = std::str::from_utf8(&bad) {
            let r = block_on(auth.verify(bad));
            prop_assert!(r.is_err(), "byte {at} -> {:?} accepted: {bad}", with as char);
            prop_assert!(block_on(auth.verify_cached(bad)).is_err());
        }
        bearer_rejected(&auth, &bad)?;
    }
}

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A token over `header` and `payload` segments as given, signed validly with the key.
fn sign_segments(header: &str, payload: &str) -> String {
    install_jwt_provider();
    let message = format!("{header}.{payload}");
    let sig = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(JWT_SECRET),
        Algorithm::HS256,
    )
    .expect("sign");
    format!("{message}.{sig}")
}

/// The same bytes spelled another way: `=` padding, or the last character's unused
/// low bits set (only when the length leaves some unused).
fn respelled(segment: &str, padding: bool) -> Option<String> {
    let rem = segment.len() % 4;
    if padding {
        // Standard padding where the length calls for it, else a stray `=`.
        let pad = if rem == 2 { "==" } else { "=" };
        return Some(format!("{segment}{pad}"));
    }
    // 2 characters left over carry 8 bits (4 unused), 3 carry 16 (2 unused).
    let unused_bits = match rem {
        2 => 0b0101,
        3 => 0b01,
        _ => return None,
    };
    let last = *segment.as_bytes().last()?;
    let index = B64URL.iter().position(|&c| c == last)?;
    let respelled = B64URL.get(index | unused_bits)?;
    let mut s = segment[..segment.len() - 1].to_owned();
    s.push(char::from(*respelled));
    Some(s)
}

proptest! {
    #![proptest_config(config(256))]

    /// One accepted spelling per token: a segment re-spelled with `=` padding or with
    /// non-zero unused bits, then signed validly over that text, is refused as malformed;
    /// and a validly signed header with any `crit` is refused.
    #[test]
    fn jwt_noncanonical_or_crit_tokens_signed_validly_are_rejected(
        c in claims(),
        segment in 0usize..2,
        padding in any::<bool>(),
        crit in prop::collection::vec("[a-z0-9]{1,8}", 0..3),
    ) {
        let token = sign_jwt(&c.json());
        let mut parts: Vec<String> = token.split('.').take(2).map(str::to_owned).collect();
        prop_assert_eq!(parts.len(), 2);
        let auth = jwt();
        if let Some(other) = respelled(&parts[segment], padding) {
            parts[segment] = other;
            let bad = sign_segments(&parts[0], &parts[1]);
            let r = block_on(auth.verify(&bad)).map(|v| v.principal.subject().to_owned());
            prop_assert_eq!(r, Err(AuthError::unauthenticated("malformed token")), "{}", bad);
            bearer_rejected(&auth, bad.as_bytes())?;
        }
        let mut header = Header::new(Algorithm::HS256);
        header.crit = Some(if crit.is_empty() { vec!["b64".to_owned()] } else { crit });
        install_jwt_provider();
        let with_crit = jsonwebtoken::encode(&header, &c.json(), &EncodingKey::from_secret(JWT_SECRET))
            .expect("sign");
        let r = block_on(auth.verify(&with_crit)).map(|v| v.principal.subject().to_owned());
        prop_assert_eq!(
            r,
            Err(AuthError::unauthenticated("token has unsupported critical header parameters"))
        );
        bearer_rejected(&auth, with_crit.as_bytes())?;
    }
}

/// Exhaustive over one token: every position, every base64url character and the
/// characters that are near misses (`=`, `.`, `+`, `/`, space). Covers the last
/// character of each segment, whose low bits carry no data when the segment's length
/// is not a multiple of 4: a non-canonical spelling must be refused.
#[test]
fn jwt_every_single_character_substitution_is_rejected() {
    let alphabet: Vec<u8> = (b'A'..=b'Z')
        .chain(b'a'..=b'z')
        .chain(b'0'..=b'9')
        .chain(*b"-_=.+/ ")
        .collect();
    // Payload lengths chosen so the segments end on each of the partial-quantum cases.
    for pad in ["", "x", "xy"] {
        let c = json!({"sub": "ada", "iss": ISS, "aud": AUD, "exp": NOW + 600, "p": pad});
        let token = sign_jwt(&c);
        let auth = jwt();
        assert!(block_on(auth.verify_cached(&token)).is_ok());
        let mut accepted = Vec::new();
        for at in 0..token.len() {
            for &with in &alphabet {
                if token.as_bytes()[at] == with {
                    continue;
                }
                let bad = replaced(token.as_bytes(), at, with);
                let bad = String::from_utf8(bad).expect("ASCII");
                if block_on(auth.verify(&bad)).is_ok() || block_on(auth.verify_cached(&bad)).is_ok()
                {
                    accepted.push((at, with as char));
                }
            }
        }
        assert!(
            accepted.is_empty(),
            "token {token}: substitutions accepted (position, char): {accepted:?}"
        );
    }
}

// ---------------------------------------------------------------------------------
// HMAC

fn signature_params() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("keyId".to_owned()),
        Just("KEYID".to_owned()),
        Just("algorithm".to_owned()),
        Just("headers".to_owned()),
        Just("signature".to_owned()),
        "[A-Za-z_-]{0,40}",
    ];
    let value = prop_oneof![
        Just("svc-a".to_owned()),
        Just("hmac-sha256".to_owned()),
        Just("hmac-sha1".to_owned()),
        Just("(request-target) date".to_owned()),
        Just("(request-target) date x-nonce".to_owned()),
        Just("date".to_owned()),
        prop::collection::vec(any::<u8>(), 32..=32).prop_map(|b| STANDARD.encode(b)),
        prop::collection::vec(any::<u8>(), 0..70)
            .prop_map(|b| STANDARD.encode(b).replace('+', "%2B")),
        "[ -~]{0,40}",
    ];
    let param = (
        name,
        value,
        prop_oneof![Just("=\""), Just(" = \""), Just("="), Just("\"")],
        prop_oneof![Just("\""), Just("")],
    )
        .prop_map(|(n, v, open, close)| format!("{n}{open}{v}{close}"));
    (
        prop_oneof![
            Just("Signature "),
            Just("signature\t"),
            Just("Signature"),
            Just("Bearer ")
        ],
        prop::collection::vec(param, 0..6),
        prop_oneof![Just(","), Just(", "), Just(" , "), Just(" ")],
    )
        .prop_map(|(scheme, params, sep)| format!("{scheme}{}", params.join(sep)))
}

fn date_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0u64..1_000).prop_map(|d| httpdate::fmt_http_date(
            std::time::UNIX_EPOCH + Duration::from_secs(NOW - 500 + d)
        )
        .into_bytes()),
        "(Mon|Tue|Sun), [0-9]{1,2} (Nov|Dec|Foo) [0-9]{4} [0-9:]{8} (GMT|UTC)"
            .prop_map(String::into_bytes),
        header_bytes(60),
    ]
}

/// Arbitrary headers for the HMAC verifier: structured `Signature` values and free
/// bytes, dates, nonces, repeated entries.
fn hmac_headers() -> impl Strategy<Value = HeaderMap> {
    let auth = prop_oneof![
        3 => signature_params().prop_map(String::into_bytes),
        1 => header_bytes(200),
    ];
    (
        prop::collection::vec(auth, 0..3),
        prop::collection::vec(date_value(), 0..3),
        prop::option::of(date_value()),
        prop::option::of(header_bytes(40)),
    )
        .prop_map(|(auths, dates, aux, nonce)| {
            let mut h = HeaderMap::new();
            let mut add = |name: &'static str, v: &[u8]| {
                if let Ok(v) = HeaderValue::from_bytes(v) {
                    h.append(HeaderName::from_static(name), v);
                }
            };
            for a in &auths {
                add("authorization", a);
            }
            for d in &dates {
                add("date", d);
            }
            if let Some(a) = &aux {
                add("x-aux-date", a);
            }
            if let Some(n) = &nonce {
                add("x-nonce", n);
            }
            h
        })
}

/// A key id the signer accepts: visible ASCII without `"` and `\`.
fn key_id() -> impl Strategy<Value = String> {
    "[!#-\\[\\]-~]{1,32}"
}

fn method_path() -> impl Strategy<Value = String> {
    "/[A-Za-z0-9_.]{1,24}/[A-Za-z0-9_]{1,24}"
}

fn algorithm() -> impl Strategy<Value = HmacAlgorithm> {
    prop_oneof![
        Just(HmacAlgorithm::Sha256),
        Just(HmacAlgorithm::Sha384),
        Just(HmacAlgorithm::Sha512),
    ]
}

/// One signed call: the signer's options, its clock, and where the verifier's clock is.
#[derive(Debug, Clone)]
struct Signed {
    key_id: String,
    secret: Vec<u8>,
    algorithm: HmacAlgorithm,
    url_encode: bool,
    nonce: bool,
    tenant: Option<String>,
    path: String,
    at: u64,
    skew: i64,
}

fn signed() -> impl Strategy<Value = Signed> {
    (
        key_id(),
        prop::collection::vec(any::<u8>(), 1..64),
        algorithm(),
        any::<bool>(),
        any::<bool>(),
        prop::option::of("[!-~]([ -~]{0,30}[!-~])?"),
        method_path(),
        1_000_000_000u64..4_000_000_000,
        -299i64..=299,
    )
        .prop_map(
            |(key_id, secret, algorithm, url_encode, nonce, tenant, path, at, skew)| Signed {
                key_id,
                secret,
                algorithm,
                url_encode,
                nonce,
                tenant,
                path,
                at,
                skew,
            },
        )
}

impl Signed {
    fn signer(&self) -> HmacSigner {
        let mut s = HmacSigner::new(self.key_id.clone(), self.secret.clone())
            .algorithm(self.algorithm)
            .clock(ManualClock::at_unix(self.at));
        if !self.url_encode {
            s = s.plain_base64();
        }
        if !self.nonce {
            s = s.no_nonce();
        }
        if self.tenant.is_some() {
            s = s.headers(["(request-target)", "date", "x-tenant"]);
        }
        s
    }

    fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(t) = &self.tenant {
            h.insert(
                HeaderName::from_static("x-tenant"),
                HeaderValue::try_from(t.as_str()).expect("tenant header"),
            );
        }
        self.signer()
            .sign(&self.path, &mut h)
            .expect("the signer signs");
        h
    }

    /// A fresh verifier (its own replay cache) whose clock is `skew` s from the signer's.
    fn verifier(&self) -> HmacVerifier {
        let clock = ManualClock::at_unix(self.at.saturating_add_signed(self.skew));
        HmacVerifier::new(
            StaticHmacKeys::new()
                .key(self.key_id.clone(), self.secret.clone())
                .key("other", "other-secret"),
        )
        .clock(clock)
    }
}

fn verify(v: &HmacVerifier, path: &str, h: &HeaderMap) -> Result<String, HmacError> {
    block_on(v.verify("POST", path, h)).map(|ok| ok.key_id)
}

/// Where the `signature="..."` value sits in an `authorization` value.
fn signature_span(auth: &[u8]) -> Option<(usize, usize)> {
    let start = auth.windows(11).position(|w| w == b"signature=\"")? + 11;
    let len = auth.get(start..)?.iter().position(|&b| b == b'"')?;
    Some((start, start + len))
}

/// Whether replacing `sig[at]` by `with` spells the same URL-encoded signature: a hex
/// digit of a `%XX` escape changing case only.
fn same_spelling(sig: &[u8], at: usize, with: u8) -> bool {
    let old = sig[at];
    let in_escape = (at >= 1 && sig[at - 1] == b'%') || (at >= 2 && sig[at - 2] == b'%');
    in_escape && old.is_ascii_hexdigit() && old != with && old.eq_ignore_ascii_case(&with)
}

proptest! {
    #![proptest_config(config(512))]

    /// Arbitrary headers and paths: never a panic, never accepted.
    #[test]
    fn hmac_verify_rejects_arbitrary_headers(
        h in hmac_headers(),
        path in prop_oneof![Just(PATH.to_owned()), any::<String>()],
        method in prop_oneof![Just("POST".to_owned()), "[ -~]{0,8}"],
        skew in prop::option::of(0u64..400),
    ) {
        let clock = ManualClock::at_unix(NOW);
        let mut v = hmac_verifier(&clock).algorithms(HmacAlgorithm::ALL);
        v = match skew {
            Some(s) => v.max_skew(Duration::from_secs(s)),
            None => v.no_skew_check(),
        };
        let r = block_on(v.verify(&method, &path, &h));
        prop_assert!(r.is_err(), "accepted {h:?}");
        if let Err(e) = r {
            // The mapping to a status never panics and is one of the two codes.
            let code = AuthError::from(e).code();
            prop_assert!(matches!(code, tonic::Code::Unauthenticated | tonic::Code::Unavailable));
        }
        let auth = HmacAuthenticator::new(hmac_verifier(&clock));
        let r = block_on(auth.authenticate(&AuthRequest::new(&path, &h)));
        prop_assert!(!matches!(r, Ok(Some(_))));
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Whatever the signer produces, a fresh verifier accepts once, as the right key;
    /// the same headers again are a replay.
    #[test]
    fn hmac_signer_output_verifies_once(s in signed()) {
        let h = s.headers();
        let v = s.verifier();
        prop_assert_eq!(verify(&v, &s.path, &h).map_err(|e| e.to_string()), Ok(s.key_id.clone()));
        prop_assert!(matches!(verify(&v, &s.path, &h), Err(HmacError::Replay)));
        // Through the authenticator (a fresh verifier): principal = key id, scheme hmac.
        let auth = HmacAuthenticator::new(s.verifier());
        let r = block_on(auth.authenticate(&AuthRequest::new(&s.path, &h)));
        let who = r.map(|o| o.map(|a| (a.principal.subject().to_owned(), a.principal.scheme().to_owned())));
        prop_assert_eq!(who, Ok(Some((s.key_id.clone(), "hmac".to_owned()))));
    }

    /// Any single-byte change to the signature value is rejected by a fresh verifier
    /// (except a case change inside a `%XX` escape, the same signature spelled
    /// differently) and, after the original was accepted, by the same verifier.
    #[test]
    fn hmac_signature_byte_change_is_rejected(
        s in signed(),
        at in any::<Index>(),
        with in header_byte(),
    ) {
        let h = s.headers();
        let auth = h["authorization"].as_bytes().to_vec();
        let (start, end) = signature_span(&auth).expect("a signature parameter");
        let sig = &auth[start..end];
        let at = at.index(sig.len());
        prop_assume!(sig[at] != with);
        let mut bad = h.clone();
        let Ok(value) = HeaderValue::from_bytes(&replaced(&auth, start + at, with)) else {
            return Ok(());
        };
        bad.insert(http::header::AUTHORIZATION, value);
        let fresh = verify(&s.verifier(), &s.path, &bad);
        if !(s.url_encode && same_spelling(sig, at, with)) {
            prop_assert!(fresh.is_err(), "signature byte {at} -> {:?} accepted", with as char);
        }
        let v = s.verifier();
        prop_assert!(verify(&v, &s.path, &h).is_ok());
        prop_assert!(verify(&v, &s.path, &bad).is_err());
    }

    /// Any single-byte change to a signed header value (`date`, the nonce, a signed
    /// `x-tenant`) is rejected.
    #[test]
    fn hmac_signed_header_byte_change_is_rejected(
        s in signed(),
        which in 0usize..3,
        at in any::<Index>(),
        with in header_byte(),
    ) {
        let h = s.headers();
        let names = ["date", "x-nonce", "x-tenant"];
        let name = names[which];
        let Some(value) = h.get(name) else { return Ok(()) };
        let value = value.as_bytes();
        let at = at.index(value.len());
        prop_assume!(value[at] != with);
        let Ok(changed) = HeaderValue::from_bytes(&replaced(value, at, with)) else {
            return Ok(());
        };
        let mut bad = h.clone();
        bad.insert(HeaderName::from_static(name), changed);
        let r = verify(&s.verifier(), &s.path, &bad);
        prop_assert!(r.is_err(), "{name} byte {at} -> {:?} accepted", with as char);
    }

    /// Any single-byte change to the method path is rejected.
    #[test]
    fn hmac_path_byte_change_is_rejected(
        s in signed(),
        at in any::<Index>(),
        with in 0x20u8..=0x7e,
    ) {
        let h = s.headers();
        let at = at.index(s.path.len());
        prop_assume!(s.path.as_bytes()[at] != with);
        let bad = String::from_utf8(replaced(s.path.as_bytes(), at, with)).expect("ASCII");
        let r = verify(&s.verifier(), &bad, &h);
        prop_assert!(r.is_err(), "path {bad:?} accepted for {:?}", s.path);
    }
}

// ---------------------------------------------------------------------------------
// Basic, API keys, and everything composed

proptest! {
    #![proptest_config(config(512))]

    /// Arbitrary Basic credentials (free text, or base64 of arbitrary bytes) never
    /// authenticate and never panic.
    #[test]
    fn basic_rejects_arbitrary_credentials(
        creds in prop_oneof![
            credential_text().prop_map(String::into_bytes),
            header_bytes(120),
            prop::collection::vec(any::<u8>(), 0..80).prop_map(|b| STANDARD.encode(b).into_bytes()),
            ("[a-z]{0,6}", "[ -~]{0,20}").prop_map(|(u, p)| STANDARD.encode(format!("{u}:{p}")).into_bytes()),
        ],
    ) {
        let mut value = b"Basic ".to_vec();
        value.extend_from_slice(&creds);
        let Ok(value) = HeaderValue::from_bytes(&value) else { return Ok(()) };
        let h = request_with("authorization", value);
        let r = block_on(basic().authenticate(&AuthRequest::new(PATH, &h)));
        prop_assert!(r.is_err(), "accepted or absent: {:?}", r.map(|o| o.map(|a| a.principal)));
    }

    /// Credentials built from an arbitrary user (no `:`) and password are accepted as
    /// that user; a different password is refused.
    #[test]
    fn basic_round_trip(
        user in "[^:\\p{Cc}]{1,32}",
        password in "\\PC{1,64}",
        wrong in "\\PC{1,64}",
    ) {
        let auth = basic().user(user.clone(), password.as_str());
        let call = |password: &str| {
            let value = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
            let h = request_with("authorization", HeaderValue::try_from(value).expect("base64 is ASCII"));
            block_on(auth.authenticate(&AuthRequest::new(PATH, &h)))
                .map(|o| o.map(|a| (a.principal.subject().to_owned(), a.principal.scheme().to_owned())))
        };
        prop_assert_eq!(call(&password), Ok(Some((user.clone(), "basic".to_owned()))));
        if wrong != password {
            prop_assert!(call(&wrong).is_err());
        }
    }

    /// Every scheme on, arbitrary metadata under every name they read: never accepted.
    #[test]
    fn composed_authenticators_reject_arbitrary_metadata(
        auths in prop::collection::vec(
            prop_oneof![
                header_value(),
                signature_params().prop_filter_map("value", |s| HeaderValue::try_from(s).ok()),
                jwt_segments().prop_filter_map("value", |t| HeaderValue::try_from(format!("Bearer {t}")).ok()),
            ],
            0..2,
        ),
        keys in prop::collection::vec(header_value(), 0..2),
        date in prop::option::of(date_value()),
        path in prop_oneof![Just(PATH.to_owned()), any::<String>()],
    ) {
        let clock = ManualClock::at_unix(NOW);
        let all = jwt()
            .or(basic())
            .or(ApiKeyAuthenticator::new().key("k-123", "billing"))
            .or(HmacAuthenticator::new(hmac_verifier(&clock)));
        let mut h = HeaderMap::new();
        for a in auths {
            h.append(http::header::AUTHORIZATION, a);
        }
        for k in keys {
            prop_assume!(k.as_bytes().trim_ascii() != b"k-123");
            h.append(HeaderName::from_static("x-api-key"), k);
        }
        if let Some(d) = date.and_then(|d| HeaderValue::from_bytes(&d).ok()) {
            h.insert(http::header::DATE, d);
        }
        let r = block_on(all.authenticate(&AuthRequest::new(&path, &h)));
        prop_assert!(!matches!(r, Ok(Some(_))), "accepted {h:?}");
        if h.is_empty() {
            prop_assert!(matches!(r, Ok(None)));
        }
    }
}

// ---------------------------------------------------------------------------------
// Policy patterns

fn pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "/?[a-z.]{0,6}(/[a-z*]{0,4}){0,3}/?",
        "[/*]{0,4}",
    ]
}

proptest! {
    #![proptest_config(config(512))]

    /// Arbitrary patterns and method paths: building the policy and looking rules up
    /// never panics.
    #[test]
    fn policy_takes_arbitrary_patterns(
        ops in prop::collection::vec((0u8..6, pattern(), "[a-z.]{1,8}"), 0..8),
        methods in prop::collection::vec(prop_oneof![pattern(), any::<String>()], 1..8),
    ) {
        let mut p = Policy::new();
        for (op, pat, name) in &ops {
            p = match op {
                0 => p.public(pat),
                1 => p.authenticated(pat),
                2 => p.require_scope(pat, name.as_str()),
                3 => p.require_role(pat, name.as_str()),
                4 => p.deny(pat),
                _ => p.default_rule(Rule::Deny),
            };
        }
        for m in &methods {
            let _ = p.rule_for(m);
        }
    }

    /// Lookup order: the exact method, else its service, else the default.
    #[test]
    fn policy_most_specific_rule_wins(
        service in "/[A-Za-z0-9_.]{1,20}",
        method in "[A-Za-z0-9_]{1,20}",
        other in "[A-Za-z0-9_]{1,20}",
        service_form in 0u8..3,
        scope in "[a-z.]{1,10}",
    ) {
        prop_assume!(method != other);
        let service_pattern = match service_form {
            0 => format!("{service}/*"),
            1 => format!("{service}/"),
            _ => service.clone(),
        };
        let exact = format!("{service}/{method}");
        let sibling = format!("{service}/{other}");
        let p = Policy::new()
            .default_rule(Rule::Deny)
            .public(&service_pattern)
            .require_scope(&exact, scope.as_str());
        prop_assert_eq!(
            p.rule_for(&exact),
            &Rule::Require { scopes: vec![scope.clone()], roles: vec![] }
        );
        prop_assert!(p.rule_for(&sibling).is_public());
        let elsewhere = format!("{service}x/{method}");
        prop_assert_eq!(p.rule_for(&elsewhere), &Rule::Deny);
        // Without the leading slash, the pattern means the same.
        let q = Policy::new().deny(&exact[1..]);
        prop_assert_eq!(q.rule_for(&exact), &Rule::Deny);
        prop_assert_eq!(q.rule_for(&sibling), &Rule::Authenticated);
    }
}

/// jsonwebtoken needs its crypto provider before it signs; making an authenticator
/// installs the one grpc-auth uses.
/// The layer's default bound on a credential-bearing value (8 KiB).
const DEFAULT_MAX_VALUE_LEN: usize = 8 * 1024;

fn install_jwt_provider() {
    let _ = grpc_auth::authn::jwt::JwtAuthenticator::new(grpc_auth::authn::jwt::StaticKeys::new());
}
