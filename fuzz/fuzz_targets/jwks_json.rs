//! JWK sets as fetched from a JWKS URL (`fuzzing::parse_jwks`), and `JwtKey::from_jwk`
//! on each entry.
//!
//! The number of usable keys must lie between the entries `JwtKey::from_jwk` takes
//! for signatures and the entries that are not symmetric and meant for verifying: an
//! `oct` key, or one whose `use`/`key_ops` say it is not for signatures, is never
//! taken from a remote set. Every key `from_jwk` takes has one algorithm of its type's
//! family.
#![no_main]

use grpc_auth::authn::jwt::JwtKey;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::Jwk;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn family_fits(kty: Option<&str>, alg: Algorithm) -> bool {
    use Algorithm::*;
    match kty {
        Some("RSA") => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
        Some("EC") => matches!(alg, ES256 | ES384),
        Some("OKP") => alg == EdDSA,
        Some("oct") => matches!(alg, HS256 | HS384 | HS512),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let got = grpc_auth::fuzzing::parse_jwks(data);
    // The set as a JWK set's reader sees it (`keys`, each entry any JSON value).
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<Value>,
    }
    let keys = serde_json::from_slice::<Set>(data)
        .map(|s| s.keys)
        .unwrap_or_default();
    let (mut lower, mut upper) = (0usize, 0usize);
    for k in &keys {
        let kty = k.get("kty").and_then(Value::as_str);
        let for_signatures = match k.get("use") {
            None | Some(Value::Null) => true,
            Some(u) => u.as_str() == Some("sig"),
        } && match k.get("key_ops") {
            None | Some(Value::Null) => true,
            Some(Value::Array(ops)) => ops.iter().any(|o| o.as_str() == Some("verify")),
            Some(_) => false,
        };
        let Ok(jwk) = serde_json::from_value::<Jwk>(k.clone()) else {
            continue;
        };
        let taken = JwtKey::from_jwk(&jwk);
        if let Ok(key) = &taken {
            let algs = key.algorithms();
            assert_eq!(algs.len(), 1, "from_jwk gave {algs:?}");
            assert!(family_fits(kty, algs[0]), "{kty:?} key for {:?}", algs[0]);
            assert!(key.allows(algs[0]));
            assert_eq!(key.kid(), k.get("kid").and_then(Value::as_str));
            if kty == Some("EC") {
                let crv = k.get("crv").and_then(Value::as_str);
                let want = if crv == Some("P-256") {
                    Algorithm::ES256
                } else {
                    Algorithm::ES384
                };
                assert_eq!(algs[0], want, "EC key on {crv:?}");
            }
        }
        if kty != Some("oct") && for_signatures {
            upper += 1;
            if taken.is_ok() {
                lower += 1;
            }
        }
    }
    match got {
        Some(n) => {
            assert!(n >= 1, "an accepted set without keys");
            assert!(n <= upper, "{n} keys taken, at most {upper} usable");
            assert!(n >= lower, "{n} keys taken, at least {lower} usable");
        }
        None => assert_eq!(lower, 0, "refused a set with {lower} usable keys"),
    }
});
