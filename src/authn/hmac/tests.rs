//! Every way a signature can fail, and the Tyk formats that must pass. Expected
//! signatures are computed here from the spec with `hmac`/`sha2`/`base64` directly.

use std::future::Future;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue};
use sha2::{Sha256, Sha512};

use super::*;
use crate::AuthError;
use crate::authn::AuthRequest;
use crate::clock::ManualClock;

const NOW: u64 = 1_700_000_000;
/// `NOW` as IMF-fixdate.
const DATE: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
const PATH: &str = "/helloworld.Greeter/SayHello";
const SECRET: &str = "s3cret";

fn run<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn clock() -> ManualClock {
    ManualClock::at_unix(NOW)
}

fn verifier() -> HmacVerifier {
    HmacVerifier::new(StaticHmacKeys::new().key("k1", SECRET)).clock(clock())
}

fn sha256_b64(secret: &str, msg: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(msg.as_bytes());
    STANDARD.encode(m.finalize().into_bytes())
}

fn sha512_b64(secret: &str, msg: &str) -> String {
    let mut m = Hmac::<Sha512>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(msg.as_bytes());
    STANDARD.encode(m.finalize().into_bytes())
}

/// Python's `urllib.parse.quote_plus` / Go's `url.QueryEscape` on base64 text.
fn quote_plus(b64: &str) -> String {
    b64.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

fn signing_string(date: &str) -> String {
    format!("(request-target): post {PATH}\ndate: {date}")
}

fn auth_value(alg: &str, headers: &str, signature: &str) -> String {
    format!(r#"Signature keyId="k1",algorithm="{alg}",headers="{headers}",signature="{signature}""#)
}

fn headers(entries: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in entries {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// A valid SHA-256 signature over `(request-target) date` at `date`.
fn signed_at(date: &str) -> HeaderMap {
    let sig = sha256_b64(SECRET, &signing_string(date));
    headers(&[
        (
            "authorization",
            &auth_value("hmac-sha256", "(request-target) date", &quote_plus(&sig)),
        ),
        ("date", date),
    ])
}

fn verify(v: &HmacVerifier, h: &HeaderMap) -> Result<HmacVerified, HmacError> {
    run(v.verify("POST", PATH, h))
}

fn err(v: &HmacVerifier, h: &HeaderMap) -> (String, bool) {
    let e = verify(v, h).unwrap_err();
    (e.to_string(), e.is_malformed())
}

fn malformed(msg: &str) -> (String, bool) {
    (msg.to_owned(), true)
}

fn refused(msg: &str) -> (String, bool) {
    (msg.to_owned(), false)
}

#[test]
fn date_constant_is_now() {
    assert_eq!(
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(NOW)),
        DATE
    );
}

#[test]
fn key_builder_adds_to_the_static_map() {
    let v = HmacVerifier::new(StaticHmacKeys::new())
        .key("k1", SECRET)
        .clock(clock());
    assert_eq!(v.keys().len(), 1);
    assert_eq!(verify(&v, &signed_at(DATE)).unwrap().key_id, "k1");
}

#[test]
fn valid_signature_is_accepted_with_what_it_proved() {
    let got = verify(&verifier(), &signed_at(DATE)).unwrap();
    assert_eq!(
        got,
        HmacVerified {
            key_id: "k1".into(),
            algorithm: HmacAlgorithm::Sha256,
            headers: vec!["(request-target)".into(), "date".into()],
            date: UNIX_EPOCH + Duration::from_secs(NOW),
        }
    );
}

#[test]
fn url_encoded_and_plain_base64_are_both_accepted() {
    let sig = sha256_b64(SECRET, &signing_string(DATE));
    assert_ne!(
        sig,
        quote_plus(&sig),
        "the vector must exercise the encoding"
    );
    let v = verifier().no_replay_protection();
    let lower = quote_plus(&sig)
        .replace("%2B", "%2b")
        .replace("%2F", "%2f")
        .replace("%3D", "%3d");
    for signature in [sig.clone(), quote_plus(&sig), lower] {
        let h = headers(&[
            (
                "authorization",
                &auth_value("hmac-sha256", "(request-target) date", &signature),
            ),
            ("date", DATE),
        ]);
        assert!(verify(&v, &h).is_ok(), "{signature}");
    }
}

#[test]
fn tyk_demo_hmac_sh_signature_is_accepted_in_date_only_mode() {
    // hmac.sh: HMAC-SHA512 over "date: <date>" with the literal key "c2VjcmV0",
    // base64, quote_plus; no headers parameter.
    let key_id = "eyJvcmciOiI1ZTlkOTU0NGExZGNkNjAwMDFkMGVkMjAiLCJpZCI6ImdycGNfaG1hY19rZXkiLCJoIjoibXVybXVyNjQifQ==";
    let sig = quote_plus(&sha512_b64("c2VjcmV0", &format!("date: {DATE}")));
    let h = headers(&[
        (
            "authorization",
            &format!(r#"Signature keyId="{key_id}",algorithm="hmac-sha512",signature="{sig}""#),
        ),
        ("date", DATE),
    ]);
    let keys = StaticHmacKeys::new().key(key_id, "c2VjcmV0");
    let strict = HmacVerifier::new(keys.clone()).clock(clock());
    assert_eq!(
        err(&strict, &h),
        refused("HMAC signature does not cover (request-target)")
    );
    let v = HmacVerifier::new(keys).clock(clock()).allow_date_only();
    let got = verify(&v, &h).unwrap();
    assert_eq!(
        (got.key_id.as_str(), got.algorithm, got.headers),
        (key_id, HmacAlgorithm::Sha512, vec!["date".to_owned()])
    );
}

#[test]
fn missing_authorization_and_other_schemes() {
    let v = verifier();
    assert_eq!(
        err(&v, &headers(&[("date", DATE)])),
        malformed("missing authorization metadata")
    );
    assert_eq!(
        err(
            &v,
            &headers(&[("authorization", "Bearer abc"), ("date", DATE)])
        ),
        malformed("authorization is not an HMAC Signature")
    );
    assert_eq!(
        err(
            &v,
            &headers(&[("authorization", "Signature"), ("date", DATE)])
        ),
        malformed("malformed HMAC Signature: no parameters")
    );
}

#[test]
fn malformed_and_duplicate_parameters() {
    let v = verifier();
    let bad = |a: &str| err(&v, &headers(&[("authorization", a), ("date", DATE)]));
    assert_eq!(
        bad(r#"Signature keyId=k1,algorithm="hmac-sha256",signature="x""#),
        malformed("malformed HMAC Signature: value of keyId is not quoted")
    );
    assert_eq!(
        bad(r#"Signature keyId="k1",keyId="k2",algorithm="hmac-sha256",signature="x""#),
        malformed("malformed HMAC Signature: duplicate parameter keyId")
    );
    assert_eq!(
        bad(r#"Signature keyId="k1",algorithm="hmac-sha256",nonce="1",signature="x""#),
        malformed("malformed HMAC Signature: unknown parameter nonce")
    );
    assert_eq!(
        bad(r#"Signature keyId="k1",algorithm="hmac-sha256""#),
        malformed("malformed HMAC Signature: missing parameter signature")
    );
    assert_eq!(
        bad(r#"Signature keyId="k1",algorithm="hmac-sha256",signature="***""#),
        malformed("malformed HMAC Signature: signature is not base64")
    );
    assert_eq!(
        bad(r#"Signature keyId="k1",algorithm="hmac-sha256",headers="date date",signature="AA==""#),
        malformed("malformed HMAC Signature: date listed twice in headers")
    );
    assert_eq!(
        bad(
            r#"Signature keyId="k1",algorithm="hmac-sha256",headers="date bad:name",signature="AA==""#
        ),
        malformed("malformed HMAC Signature: invalid header name in headers")
    );
    let many = (0..33)
        .map(|i| format!("x-h{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(
        bad(&format!(
            r#"Signature keyId="k1",algorithm="hmac-sha256",headers="{many}",signature="AA==""#
        )),
        malformed("malformed HMAC Signature: more than 32 signed headers")
    );
}

#[test]
fn unknown_algorithm_is_refused_never_downgraded() {
    let v = verifier();
    for alg in ["hmac-md5", "rsa-sha256", "sha256", ""] {
        let a = format!(r#"Signature keyId="k1",algorithm="{alg}",signature="AA==""#);
        let want = if alg.is_empty() {
            malformed("malformed HMAC Signature: empty value of algorithm")
        } else {
            malformed("unsupported HMAC algorithm")
        };
        assert_eq!(
            err(&v, &headers(&[("authorization", &a), ("date", DATE)])),
            want
        );
    }
}

#[test]
fn sha1_only_when_explicitly_allowed() {
    let mut m = Hmac::<sha1::Sha1>::new_from_slice(SECRET.as_bytes()).unwrap();
    m.update(signing_string(DATE).as_bytes());
    let sig = STANDARD.encode(m.finalize().into_bytes());
    let h = headers(&[
        (
            "authorization",
            &auth_value("hmac-sha1", "(request-target) date", &sig),
        ),
        ("date", DATE),
    ]);
    assert_eq!(
        err(&verifier(), &h),
        malformed("HMAC algorithm hmac-sha1 is not allowed")
    );
    let v = verifier().algorithms([HmacAlgorithm::Sha1]);
    assert_eq!(verify(&v, &h).unwrap().algorithm, HmacAlgorithm::Sha1);
    // The allow-list is the whole list: SHA-256 is now refused.
    assert_eq!(
        err(&v, &signed_at(DATE)),
        malformed("HMAC algorithm hmac-sha256 is not allowed")
    );
}

#[test]
fn sha384_and_sha512_verify() {
    let v = verifier().no_replay_protection();
    let mut m = Hmac::<sha2::Sha384>::new_from_slice(SECRET.as_bytes()).unwrap();
    m.update(signing_string(DATE).as_bytes());
    let s384 = STANDARD.encode(m.finalize().into_bytes());
    let s512 = sha512_b64(SECRET, &signing_string(DATE));
    for (alg, sig) in [("hmac-sha384", s384), ("hmac-sha512", s512)] {
        let h = headers(&[
            (
                "authorization",
                &auth_value(alg, "(request-target) date", &sig),
            ),
            ("date", DATE),
        ]);
        assert_eq!(verify(&v, &h).unwrap().algorithm.name(), alg);
    }
}

#[test]
fn missing_and_bad_dates() {
    let v = verifier();
    let sig = sha256_b64(SECRET, &signing_string(DATE));
    let auth = auth_value("hmac-sha256", "(request-target) date", &sig);
    assert_eq!(
        err(&v, &headers(&[("authorization", &auth)])),
        malformed("missing date metadata")
    );
    for bad in ["yesterday", "2023-11-14T22:13:20Z", "1700000000"] {
        assert_eq!(
            err(&v, &headers(&[("authorization", &auth), ("date", bad)])),
            malformed("date metadata is not an HTTP date")
        );
    }
    assert_eq!(
        err(
            &v,
            &headers(&[("authorization", &auth), ("date", DATE), ("date", DATE)])
        ),
        malformed("multiple date metadata entries")
    );
    // Date not signed at all.
    let only_target = auth_value("hmac-sha256", "(request-target)", &sig);
    assert_eq!(
        err(
            &v,
            &headers(&[("authorization", &only_target), ("date", DATE)])
        ),
        refused("HMAC signature does not cover date")
    );
}

#[test]
fn date_outside_the_window_either_way() {
    let c = clock();
    let v = HmacVerifier::new(StaticHmacKeys::new().key("k1", SECRET))
        .clock(c.clone())
        .max_skew(Duration::from_secs(60));
    let h = signed_at(DATE);
    // 61 s later: the date is too old.
    c.set_unix(NOW + 61);
    assert_eq!(
        err(&v, &h),
        refused("date is outside the allowed clock skew of 60 s")
    );
    // 61 s earlier: the date is in the future.
    c.set_unix(NOW - 61);
    assert_eq!(
        err(&v, &h),
        refused("date is outside the allowed clock skew of 60 s")
    );
    // At the edge it passes.
    c.set_unix(NOW + 60);
    assert!(verify(&v, &h).is_ok());
    // Without a skew check any date passes (but is still replay-checked).
    c.set_unix(NOW + 86_400);
    let v = v.no_skew_check().no_replay_protection();
    assert!(verify(&v, &h).is_ok());
}

#[test]
fn default_skew_is_300_seconds() {
    let c = clock();
    let v = verifier().clock(c.clone()).no_replay_protection();
    c.set_unix(NOW + 300);
    assert!(verify(&v, &signed_at(DATE)).is_ok());
    c.set_unix(NOW + 301);
    assert_eq!(
        err(&v, &signed_at(DATE)),
        refused("date is outside the allowed clock skew of 300 s")
    );
}

#[test]
fn unknown_key_and_bad_signature() {
    let v = verifier();
    let sig = sha256_b64(SECRET, &signing_string(DATE));
    let other = format!(
        r#"Signature keyId="k2",algorithm="hmac-sha256",headers="(request-target) date",signature="{sig}""#
    );
    assert_eq!(
        err(&v, &headers(&[("authorization", &other), ("date", DATE)])),
        refused("unknown HMAC key id")
    );
    let wrong = sha256_b64("not-the-secret", &signing_string(DATE));
    let h = headers(&[
        (
            "authorization",
            &auth_value("hmac-sha256", "(request-target) date", &wrong),
        ),
        ("date", DATE),
    ]);
    assert_eq!(err(&v, &h), refused("HMAC signature mismatch"));
    // Signed for another method.
    let h = signed_at(DATE);
    assert_eq!(
        run(v.verify("POST", "/helloworld.Greeter/SayHelloAdmin", &h))
            .unwrap_err()
            .to_string(),
        "HMAC signature mismatch"
    );
    // A truncated MAC.
    let short = STANDARD.encode(&STANDARD.decode(&sig).unwrap()[..16]);
    let h = headers(&[
        (
            "authorization",
            &auth_value("hmac-sha256", "(request-target) date", &short),
        ),
        ("date", DATE),
    ]);
    assert_eq!(err(&v, &h), refused("HMAC signature mismatch"));
}

#[test]
fn empty_secret_never_verifies() {
    let v = HmacVerifier::new(StaticHmacKeys::new().key("k1", "")).clock(clock());
    let sig = sha256_b64("", &signing_string(DATE));
    let h = headers(&[
        (
            "authorization",
            &auth_value("hmac-sha256", "(request-target) date", &sig),
        ),
        ("date", DATE),
    ]);
    assert_eq!(err(&v, &h), refused("unknown HMAC key id"));
}

#[test]
fn replay_is_refused_and_cache_can_be_turned_off() {
    let v = verifier();
    let h = signed_at(DATE);
    assert!(verify(&v, &h).is_ok());
    assert_eq!(err(&v, &h), refused("HMAC signature already used (replay)"));
    // A clone shares the cache.
    assert_eq!(
        err(&v.clone(), &h),
        refused("HMAC signature already used (replay)")
    );
    // The same MAC in its other encoding is the same signature.
    let plain = sha256_b64(SECRET, &signing_string(DATE));
    let h2 = headers(&[
        (
            "authorization",
            &auth_value("hmac-sha256", "(request-target) date", &plain),
        ),
        ("date", DATE),
    ]);
    assert_eq!(
        err(&v, &h2),
        refused("HMAC signature already used (replay)")
    );
    let off = verifier().no_replay_protection();
    assert!(verify(&off, &h).is_ok());
    assert!(verify(&off, &h).is_ok());
}

#[test]
fn nonce_in_the_signed_set_makes_same_second_calls_distinct() {
    let v = verifier();
    for nonce in ["n-1", "n-2"] {
        let s = format!("{}\nx-nonce: {nonce}", signing_string(DATE));
        let sig = sha256_b64(SECRET, &s);
        let h = headers(&[
            (
                "authorization",
                &auth_value("hmac-sha256", "(request-target) date x-nonce", &sig),
            ),
            ("date", DATE),
            ("x-nonce", nonce),
        ]);
        assert_eq!(
            verify(&v, &h).unwrap().headers,
            vec!["(request-target)", "date", "x-nonce"]
        );
    }
    // Changing the nonce breaks the signature.
    let s = format!("{}\nx-nonce: n-1", signing_string(DATE));
    let h = headers(&[
        (
            "authorization",
            &auth_value(
                "hmac-sha256",
                "(request-target) date x-nonce",
                &sha256_b64(SECRET, &s),
            ),
        ),
        ("date", DATE),
        ("x-nonce", "n-3"),
    ]);
    assert_eq!(err(&v, &h), refused("HMAC signature mismatch"));
    // A verifier can require the nonce.
    let strict = verifier().require_headers(["(request-target)", "x-nonce"]);
    assert_eq!(
        err(&strict, &signed_at(DATE)),
        refused("HMAC signature does not cover x-nonce")
    );
}

#[test]
fn listed_header_that_is_absent() {
    let v = verifier();
    let a = auth_value("hmac-sha256", "(request-target) date x-tenant", "AA==");
    assert_eq!(
        err(&v, &headers(&[("authorization", &a), ("date", DATE)])),
        malformed("signed header x-tenant is absent")
    );
}

#[test]
fn oversized_and_non_ascii_values_are_rejected_cleanly() {
    let v = verifier().max_value_len(256);
    let big = format!(
        r#"Signature keyId="{}",algorithm="hmac-sha256",signature="AA==""#,
        "k".repeat(300)
    );
    assert_eq!(
        err(&v, &headers(&[("authorization", &big), ("date", DATE)])),
        malformed("authorization metadata exceeds 256 bytes")
    );
    let sig = sha256_b64(SECRET, &signing_string(DATE));
    let a = auth_value("hmac-sha256", "(request-target) date", &sig);
    let long_date = format!("{DATE}{}", " ".repeat(300));
    assert_eq!(
        err(&v, &headers(&[("authorization", &a), ("date", &long_date)])),
        malformed("date metadata exceeds 256 bytes")
    );
    let a = auth_value("hmac-sha256", "(request-target) date x-big", &sig);
    let mut h = headers(&[("authorization", &a), ("date", DATE)]);
    h.insert("x-big", HeaderValue::from_bytes(&[b'a'; 300]).unwrap());
    assert_eq!(err(&v, &h), malformed("x-big metadata exceeds 256 bytes"));
    let mut h = headers(&[("date", DATE)]);
    h.insert(
        "authorization",
        HeaderValue::from_bytes(b"Signature keyId=\"\xff\"").unwrap(),
    );
    assert_eq!(
        err(&v, &h),
        malformed("authorization metadata is not valid ASCII")
    );
    // The default bound is the layer's 8 KiB.
    let huge = format!(
        r#"Signature keyId="{}",algorithm="hmac-sha256",signature="AA==""#,
        "k".repeat(9000)
    );
    assert_eq!(
        err(
            &verifier(),
            &headers(&[("authorization", &huge), ("date", DATE)])
        ),
        malformed("authorization metadata exceeds 8192 bytes")
    );
}

#[test]
fn x_aux_date_replaces_date_in_the_signing_string() {
    let v = verifier();
    let s = format!("(request-target): post {PATH}\nx-aux-date: {DATE}");
    let h = headers(&[
        (
            "authorization",
            &auth_value(
                "hmac-sha256",
                "(request-target) date",
                &sha256_b64(SECRET, &s),
            ),
        ),
        ("x-aux-date", DATE),
        ("date", "Mon, 01 Jan 2001 00:00:00 GMT"),
    ]);
    assert!(verify(&v, &h).is_ok());
}

#[test]
fn request_target_drops_the_query_and_lowercases_the_method() {
    let v = verifier();
    let h = signed_at(DATE);
    assert!(run(v.verify("post", &format!("{PATH}?a=1"), &h)).is_ok());
}

#[test]
fn errors_map_to_auth_errors() {
    assert_eq!(
        AuthError::from(HmacError::MissingAuthorization),
        AuthError::Missing
    );
    assert_eq!(
        AuthError::from(HmacError::Replay),
        AuthError::unauthenticated("HMAC signature already used (replay)")
    );
    assert_eq!(
        AuthError::from(HmacError::BadDate).code(),
        tonic::Code::Unauthenticated
    );
    assert_eq!(
        AuthError::from(HmacError::KeyStore("db down".into())),
        AuthError::unavailable("HMAC key store unavailable: db down")
    );
}

#[test]
fn messages_never_contain_the_secret_or_signature() {
    let v = verifier();
    let wrong = sha256_b64("other", &signing_string(DATE));
    let h = headers(&[
        (
            "authorization",
            &auth_value("hmac-sha256", "(request-target) date", &wrong),
        ),
        ("date", DATE),
    ]);
    let e = verify(&v, &h).unwrap_err();
    let shown = format!("{e} {e:?} {v:?}");
    assert!(
        !shown.contains(SECRET) && !shown.contains(&wrong),
        "{shown}"
    );
}

// --- the authenticator ---

fn authenticate(auth: &HmacAuthenticator, h: &HeaderMap) -> crate::authn::AuthResult {
    run(auth.authenticate(&AuthRequest::new(PATH, h)))
}

#[test]
fn authenticator_is_absent_without_a_signature() {
    let a = HmacAuthenticator::new(verifier());
    assert!(authenticate(&a, &headers(&[])).unwrap().is_none());
    assert!(
        authenticate(&a, &headers(&[("authorization", "Bearer x")]))
            .unwrap()
            .is_none()
    );
    assert!(
        authenticate(&a, &headers(&[("date", DATE)]))
            .unwrap()
            .is_none()
    );
}

#[test]
fn authenticator_gives_the_key_id_as_principal_or_the_reason() {
    let a = HmacAuthenticator::new(verifier());
    let got = authenticate(&a, &signed_at(DATE)).unwrap().unwrap();
    assert_eq!(
        (got.principal.subject(), got.principal.scheme()),
        ("k1", "hmac")
    );
    assert_eq!(
        authenticate(&a, &signed_at(DATE)).unwrap_err(),
        AuthError::unauthenticated("HMAC signature already used (replay)")
    );
    assert_eq!(
        authenticate(&a, &headers(&[("authorization", "signature keyId=\"k1\"")])).unwrap_err(),
        AuthError::unauthenticated("malformed HMAC Signature: missing parameter algorithm")
    );
}

/// A valid signature over `(request-target) date x-nonce` at `date`.
fn signed_with_nonce(date: &str, nonce: &str) -> HeaderMap {
    let s = format!("{}\nx-nonce: {nonce}", signing_string(date));
    let sig = sha256_b64(SECRET, &s);
    headers(&[
        (
            "authorization",
            &auth_value("hmac-sha256", "(request-target) date x-nonce", &sig),
        ),
        ("date", date),
        ("x-nonce", nonce),
    ])
}

#[test]
fn a_captured_signature_stays_refused_under_traffic_while_its_date_is_valid() {
    // The reported defect: once the cache was full, ~2,000 further calls pushed the
    // captured signature out while its date still passed the skew check.
    let c = clock();
    let v = verifier().clock(c.clone()).replay_cache_size(1_000);
    let captured = signed_with_nonce(DATE, "captured");
    assert!(verify(&v, &captured).is_ok());
    let (mut accepted, mut full) = (0, 0);
    for i in 0..5_000 {
        match verify(&v, &signed_with_nonce(DATE, &format!("n-{i}"))) {
            Ok(_) => accepted += 1,
            Err(HmacError::ReplayCacheFull) => full += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((accepted, full), (999, 4_001));
    let full_err = AuthError::from(HmacError::ReplayCacheFull);
    assert_eq!(full_err.code(), tonic::Code::Unavailable);
    assert_eq!(full_err.to_string(), "HMAC replay cache full");
    // Still refused at the last second its date is valid (skew 300 s).
    c.advance(Duration::from_secs(300));
    assert_eq!(
        err(&v, &captured),
        refused("HMAC signature already used (replay)")
    );
    // One second later the date check refuses it, and the expired entries free room.
    c.advance(Duration::from_secs(1));
    assert_eq!(
        err(&v, &captured),
        refused("date is outside the allowed clock skew of 300 s")
    );
    let fresh_date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(NOW + 301));
    let later = verify(&v, &signed_with_nonce(&fresh_date, "later"));
    assert!(later.is_ok(), "{later:?}");
}

#[test]
fn a_date_ahead_of_the_clock_is_remembered_until_it_leaves_the_window() {
    let c = clock();
    let v = verifier().clock(c.clone());
    // Signed 200 s in the future: valid until NOW + 500.
    let ahead = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(NOW + 200));
    let h = signed_with_nonce(&ahead, "n");
    assert!(verify(&v, &h).is_ok());
    c.advance(Duration::from_secs(500));
    assert_eq!(err(&v, &h), refused("HMAC signature already used (replay)"));
}

#[test]
fn without_a_skew_check_signatures_are_never_forgotten() {
    let v = verifier().no_skew_check().replay_cache_size(3);
    let first = signed_with_nonce(DATE, "first");
    assert!(verify(&v, &first).is_ok());
    for i in 0..2 {
        assert!(verify(&v, &signed_with_nonce(DATE, &format!("n-{i}"))).is_ok());
    }
    for i in 2..100 {
        assert_eq!(
            verify(&v, &signed_with_nonce(DATE, &format!("n-{i}"))).unwrap_err(),
            HmacError::ReplayCacheFull
        );
    }
    assert_eq!(
        err(&v, &first),
        refused("HMAC signature already used (replay)")
    );
}
