//! Key selection: by `kid` or the single key for the algorithm, several keys,
//! and what a key source is asked and answers.

use std::sync::Mutex;

use super::*;

fn two_hmac_keys_with_kids() -> StaticKeys {
    StaticKeys::new()
        .with(
            JwtKey::secret(Algorithm::HS256, SECRET)
                .unwrap()
                .with_kid("k1"),
        )
        .with(
            JwtKey::secret(Algorithm::HS256, SECRET2)
                .unwrap()
                .with_kid("k2"),
        )
}

#[tokio::test]
async fn kid_selects_its_key() {
    let auth = with_clock(two_hmac_keys_with_kids());
    let k2 = EncodingKey::from_secret(SECRET2);
    let token = sign_with(Algorithm::HS256, Some("k2"), &claims(), &k2);
    assert_eq!(accept(&auth, &token).await.subject(), "ada");
    // Only the named key is tried: k2's signature under kid k1 fails.
    let token = sign_with(Algorithm::HS256, Some("k1"), &claims(), &k2);
    assert_eq!(reject(&auth, &token).await, "invalid token signature");
}

#[tokio::test]
async fn unknown_kid_is_rejected() {
    let auth = with_clock(two_hmac_keys_with_kids());
    let token = sign_with(
        Algorithm::HS256,
        Some("k3"),
        &claims(),
        &EncodingKey::from_secret(SECRET),
    );
    assert_eq!(reject(&auth, &token).await, "unknown token key id");
}

#[tokio::test]
async fn kid_does_not_match_keys_without_a_kid() {
    let token = sign_with(
        Algorithm::HS256,
        Some("k1"),
        &claims(),
        &EncodingKey::from_secret(SECRET),
    );
    assert_eq!(reject(&hmac_auth(), &token).await, "unknown token key id");
}

#[tokio::test]
async fn without_kid_two_keys_for_the_algorithm_are_not_tried() {
    // Without a kid, a token is tried only against the single key that allows its
    // algorithm: with two, even a token one of them signed is refused.
    let auth = with_clock(two_hmac_keys_with_kids());
    for secret in [SECRET, SECRET2] {
        let token = sign_with(
            Algorithm::HS256,
            None,
            &claims(),
            &EncodingKey::from_secret(secret),
        );
        assert_eq!(
            reject(&auth, &token).await,
            "token has no key id and several keys fit"
        );
    }
    // Two keys of the same type without ids: likewise.
    let auth = with_clock(
        StaticKeys::new()
            .with(hmac_key())
            .with(JwtKey::secret(Algorithm::HS256, SECRET2).unwrap()),
    );
    assert_eq!(
        reject(&auth, &hs256(&claims())).await,
        "token has no key id and several keys fit"
    );
}

#[tokio::test]
async fn without_kid_the_single_key_for_the_algorithm_is_tried() {
    let auth = with_clock(StaticKeys::from(hmac_key().with_kid("k1")));
    assert_eq!(accept(&auth, &hs256(&claims())).await.subject(), "ada");
    let token = sign_with(
        Algorithm::HS256,
        None,
        &claims(),
        &EncodingKey::from_secret(b"a third secret that matches nothing"),
    );
    assert_eq!(reject(&auth, &token).await, "invalid token signature");
}

#[tokio::test]
async fn without_kid_keys_of_other_algorithms_are_skipped() {
    let auth = with_clock(
        StaticKeys::new()
            .with(hmac_key())
            .with(JwtKey::from_pem(Algorithm::ES256, EC256_PUBLIC).unwrap())
            .with(rsa_key()),
    );
    assert_eq!(
        accept(&auth, &rs256(None, &claims())).await.subject(),
        "ada"
    );
    assert_eq!(accept(&auth, &hs256(&claims())).await.subject(), "ada");
}

#[tokio::test]
async fn claim_error_of_the_matching_key_is_reported_over_other_keys_signature_failures() {
    // Two keys share the token's kid: whichever order they come in, the one that
    // verifies the signature decides, and the token then fails on its issuer.
    let token = sign_with(
        Algorithm::HS256,
        Some("k"),
        &json!({ "sub": "ada", "exp": NOW + 3600, "iss": "https://evil.example" }),
        &EncodingKey::from_secret(SECRET),
    );
    let other = || {
        JwtKey::secret(Algorithm::HS256, SECRET2)
            .unwrap()
            .with_kid("k")
    };
    for keys in [
        StaticKeys::new()
            .with(hmac_key().with_kid("k"))
            .with(other()),
        StaticKeys::new()
            .with(other())
            .with(hmac_key().with_kid("k")),
    ] {
        let auth = with_clock(keys).issuer(ISSUER);
        assert_eq!(reject(&auth, &token).await, "invalid token issuer");
    }
}

#[test]
fn key_set_finds_candidates_by_kid_or_the_single_key_for_the_algorithm() {
    let set = KeySet::new(vec![
        hmac_key().with_kid("h"),
        rsa_key().with_kid("r"),
        rsa_key(),
    ]);
    assert_eq!(set.keys().len(), 3);
    assert!(set.contains_kid("h"));
    assert!(!set.contains_kid("x"));
    // By kid: the key with that id, whatever the algorithm (the caller checks it).
    let by_kid: Vec<_> = set
        .candidates(Some("r"), Algorithm::HS256)
        .unwrap()
        .collect();
    assert_eq!(by_kid.len(), 1);
    assert_eq!(by_kid[0].kid(), Some("r"));
    // Without kid: the one key that allows the algorithm...
    let by_alg: Vec<_> = set.candidates(None, Algorithm::HS256).unwrap().collect();
    assert_eq!(by_alg.len(), 1);
    assert_eq!(by_alg[0].kid(), Some("h"));
    // ...and none when two keys allow it.
    let refused = |kid, alg| set.candidates(kid, alg).err().map(|e| e.to_string());
    assert_eq!(
        refused(None, Algorithm::RS256).as_deref(),
        Some("token has no key id and several keys fit")
    );
    assert_eq!(
        refused(None, Algorithm::ES256).as_deref(),
        Some("no key for the token's algorithm")
    );
    assert_eq!(
        refused(Some("x"), Algorithm::RS256).as_deref(),
        Some("unknown token key id")
    );
}

#[test]
fn key_query_reads_the_unverified_issuer_from_the_payload_on_request() {
    let payload = |v: Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap());
    let with = |p: &str| {
        KeyQuery::from_token(Some("k"), Algorithm::RS256, p)
            .unverified_issuer()
            .map_err(|e| e.to_string())
    };
    let p = payload(json!({ "iss": ISSUER, "sub": "ada" }));
    assert_eq!(with(&p), Ok(Some(ISSUER.to_owned())));
    let p = payload(json!({ "sub": "ada" }));
    assert_eq!(with(&p), Ok(None));
    let p = payload(json!({ "iss": 7 }));
    assert_eq!(with(&p), Err("invalid token issuer".to_owned()));
    for garbage in ["***".to_owned(), payload(json!([1])), String::new()] {
        assert_eq!(
            with(&garbage),
            Err("malformed token".to_owned()),
            "{garbage}"
        );
    }
    let q = KeyQuery::new(None, Algorithm::ES256);
    assert_eq!((q.kid(), q.alg()), (None, Algorithm::ES256));
    assert_eq!(q.unverified_issuer(), Ok(None));
    assert_eq!(
        q.with_issuer(ISSUER).unverified_issuer(),
        Ok(Some(ISSUER.to_owned()))
    );
}

#[test]
fn static_keys_never_change_generation() {
    assert_eq!(StaticKeys::from(hmac_key()).generation(), 0);
}

/// A key source that records the kids it is asked for, or fails.
#[derive(Debug, Default)]
struct RecordingKeys {
    keys: Arc<KeySet>,
    asked: Mutex<Vec<Option<String>>>,
    down: bool,
}

impl KeySource for RecordingKeys {
    async fn keys(&self, query: KeyQuery<'_>) -> Result<Arc<KeySet>, AuthError> {
        self.asked
            .lock()
            .unwrap()
            .push(query.kid().map(str::to_owned));
        if self.down {
            return Err(AuthError::unavailable("key server unreachable"));
        }
        Ok(self.keys.clone())
    }
}

#[tokio::test]
async fn key_source_is_asked_with_the_token_kid() {
    let source = RecordingKeys {
        keys: Arc::new(KeySet::new(vec![hmac_key().with_kid("k1")])),
        ..Default::default()
    };
    let auth = with_clock(source);
    let token = sign_with(
        Algorithm::HS256,
        Some("k1"),
        &claims(),
        &EncodingKey::from_secret(SECRET),
    );
    assert_eq!(accept(&auth, &token).await.subject(), "ada");
    // Without a kid, the keyed key is still a candidate for its algorithm.
    assert_eq!(accept(&auth, &hs256(&claims())).await.subject(), "ada");
    assert_eq!(
        *auth.key_source().asked.lock().unwrap(),
        vec![Some("k1".to_owned()), None]
    );
}

#[tokio::test]
async fn failing_key_source_is_unavailable() {
    let auth = with_clock(RecordingKeys {
        down: true,
        ..Default::default()
    });
    let err = auth.verify(&hs256(&claims())).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(err.to_string(), "key server unreachable");
}

#[tokio::test]
async fn malformed_token_does_not_reach_the_key_source() {
    let auth = with_clock(RecordingKeys::default());
    assert_eq!(reject(&auth, "abc").await, "malformed token");
    assert!(auth.key_source().asked.lock().unwrap().is_empty());
}

#[tokio::test]
async fn empty_key_set_has_no_key_for_the_algorithm() {
    let auth = with_clock(StaticKeys::new());
    assert_eq!(
        reject(&auth, &hs256(&claims())).await,
        "no key for the token's algorithm"
    );
}
