//! Garbage: malformed tokens, and correctly signed tokens with malformed
//! payloads.

use super::*;

#[tokio::test]
async fn garbage_tokens_are_malformed() {
    let auth = hmac_auth();
    let payload = serde_json::to_vec(&claims()).unwrap();
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("one part", "abc".into()),
        ("dots only", "..".into()),
        ("three non-base64 parts", "a.b.c".into()),
        ("non-base64 with symbols", "$$$.%%%.^^^".into()),
        ("non-JSON header", raw_token(b"not json", &payload, "c2ln")),
        (
            "header without alg",
            raw_token(br#"{"typ":"JWT"}"#, &payload, "c2ln"),
        ),
        (
            "unknown alg",
            raw_token(br#"{"alg":"XS256"}"#, &payload, "c2ln"),
        ),
        (
            "header is a JSON array",
            raw_token(b"[1,2]", &payload, "c2ln"),
        ),
        ("two parts", {
            let t = hs256(&claims());
            t.rsplit_once('.').unwrap().0.to_owned()
        }),
        ("four parts", format!("{}.extra", hs256(&claims()))),
        ("leading dot", format!(".{}", hs256(&claims()))),
        (
            "non-UTF-8 header",
            raw_token(&[0xff, 0xfe, 0xfd], &payload, "c2ln"),
        ),
    ];
    for (what, token) in cases {
        assert_eq!(reject(&auth, &token).await, "malformed token", "{what}");
    }
}

/// An HS256 token with the given (already encoded) payload part, correctly signed
/// with [`SECRET`].
fn hs256_raw(payload_b64: &str) -> String {
    install_crypto_provider();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let message = format!("{header}.{payload_b64}");
    let sig = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{message}.{sig}")
}

#[tokio::test]
async fn correctly_signed_garbage_payloads_are_malformed() {
    let auth = hmac_auth().required_claims(Vec::<String>::new());
    let cases: Vec<(&str, String)> = vec![
        ("empty payload", String::new()),
        ("non-JSON payload", URL_SAFE_NO_PAD.encode(b"hello world")),
        ("JSON array payload", URL_SAFE_NO_PAD.encode(b"[1,2,3]")),
        ("JSON string payload", URL_SAFE_NO_PAD.encode(br#""ada""#)),
        ("non-base64 payload", "***".into()),
        (
            "duplicate spec claim",
            URL_SAFE_NO_PAD.encode(br#"{"sub":"ada","sub":"root"}"#),
        ),
    ];
    for (what, payload) in cases {
        let token = hs256_raw(&payload);
        assert_eq!(reject(&auth, &token).await, "malformed token", "{what}");
    }
    // The helper itself produces tokens that verify.
    let ok = hs256_raw(&URL_SAFE_NO_PAD.encode(br#"{"sub":"ada"}"#));
    assert_eq!(accept(&auth, &ok).await.subject(), "ada");
}

#[tokio::test]
async fn empty_middle_part_with_a_bogus_signature_is_rejected() {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let token = format!("{header}..c2ln");
    assert_eq!(
        reject(&hmac_auth(), &token).await,
        "invalid token signature"
    );
}

#[tokio::test]
async fn huge_token_is_rejected_without_panicking() {
    let token = format!(
        "{}.{}.{}",
        "A".repeat(10_000),
        "B".repeat(10_000),
        "C".repeat(10_000)
    );
    assert_eq!(reject(&hmac_auth(), &token).await, "malformed token");
}

#[tokio::test]
async fn a_payload_whose_skipped_claim_is_not_valid_json_is_malformed() {
    // Found by fuzzing: a lone surrogate in a claim the authenticator does not read was
    // accepted, and the handler then saw no claims at all.
    let payload = format!(r#"{{"sub":"ada","exp":{},"x":"\ud800"}}"#, NOW + 3600);
    assert_eq!(
        reject(&hmac_auth(), &signed_payload(&payload)).await,
        "malformed token"
    );
    // A valid escape still verifies, and its claim is readable.
    let payload = format!(r#"{{"sub":"ada","exp":{},"x":"\u00e9"}}"#, NOW + 3600);
    let p = accept(&hmac_auth(), &signed_payload(&payload)).await;
    assert_eq!(p.claims()["x"], "\u{e9}");
}

/// Signs `payload` (raw JSON text) as an HS256 token with [`SECRET`].
fn signed_payload(payload: &str) -> String {
    hs256_raw(&URL_SAFE_NO_PAD.encode(payload))
}

#[tokio::test]
async fn every_claim_must_parse_not_only_the_ones_read() {
    // Found by fuzzing: serde_json skips unread values without checking them, so these
    // verified while `Principal::claims()` came out empty.
    let exp = NOW + 3600;
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    for extra in [r#""\ud800""#.to_owned(), "1e400".to_owned(), deep] {
        let token = signed_payload(&format!(r#"{{"sub":"ada","exp":{exp},"x":{extra}}}"#));
        assert_eq!(
            reject(&hmac_auth(), &token).await,
            "malformed token",
            "{extra:.20}"
        );
    }
}

#[tokio::test]
async fn a_repeated_claim_is_malformed() {
    let exp = NOW + 3600;
    for payload in [
        format!(r#"{{"sub":"ada","sub":"root","exp":{exp}}}"#),
        format!(r#"{{"sub":"ada","exp":{exp},"tenant":"a","tenant":"b"}}"#),
    ] {
        assert_eq!(
            reject(&hmac_auth(), &signed_payload(&payload)).await,
            "malformed token"
        );
    }
}

#[tokio::test]
async fn the_claims_a_handler_reads_are_the_verified_payload() {
    let exp = NOW + 3600;
    let token = signed_payload(&format!(
        r#"{{"sub":"ada","exp":{exp},"tenant":"acme","n":[1,{{"k":"\u00e9"}}]}}"#
    ));
    let p = accept(&hmac_auth(), &token).await;
    assert_eq!(p.claims()["tenant"], "acme");
    assert_eq!(p.claims()["n"][1]["k"], "\u{e9}");
    #[derive(serde::Deserialize)]
    struct Mine {
        tenant: String,
        exp: u64,
    }
    let mine: Mine = p.claims_as().unwrap();
    assert_eq!((mine.tenant.as_str(), mine.exp), ("acme", exp));
}
