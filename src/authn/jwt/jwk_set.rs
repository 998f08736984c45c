//! Reading a JWK set (RFC 7517) into the keys that may verify signatures, and the
//! set's fingerprint (what tells a changed key set from a refetched identical one).

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse};
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;

use super::jwks::JwksError;
use super::keys::{JwtKey, KeyError};
use crate::fetch::Shown;

/// Skipped keys logged one by one per fetch; the rest are counted.
const MAX_SKIP_LOGS: usize = 5;

/// Why a JWK was skipped.
enum Skip {
    /// Meant for something else (`use` or `key_ops`): logged at debug.
    NotForSignatures,
    /// Broken or unsupported: logged at warn.
    Unusable(String),
}

/// The usable keys of a JWK set and their fingerprint.
pub(crate) fn parse_jwks(
    body: &[u8],
    source: &Url,
) -> Result<(Vec<JwtKey>, Vec<String>), JwksError> {
    #[derive(Deserialize)]
    struct JwkSet {
        keys: Vec<Value>,
    }
    let set: JwkSet = serde_json::from_slice(body)
        .map_err(|e| JwksError::Invalid(format!("{}: not a JWK set: {e}", Shown(source))))?;
    let mut keys = Vec::new();
    let mut fingerprint = Vec::new();
    let mut skipped = 0usize;
    for value in set.keys {
        let kid: String = value
            .get("kid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .chars()
            .take(64)
            .collect();
        match usable_key(value) {
            Ok((key, print)) => {
                keys.push(key);
                fingerprint.push(print);
            }
            Err(Skip::NotForSignatures) => {
                tracing::debug!(source = %Shown(source), kid, "grpc-auth: JWKS key not for signatures, skipped");
            }
            Err(Skip::Unusable(reason)) => {
                skipped += 1;
                if skipped <= MAX_SKIP_LOGS {
                    let reason: String = reason.chars().take(200).collect();
                    tracing::warn!(source = %Shown(source), kid, reason, "grpc-auth: JWKS key skipped");
                }
            }
        }
    }
    if skipped > MAX_SKIP_LOGS {
        tracing::warn!(source = %Shown(source), skipped, "grpc-auth: JWKS keys skipped in all");
    }
    if keys.is_empty() {
        return Err(JwksError::Invalid(format!(
            "{}: no usable keys",
            Shown(source)
        )));
    }
    fingerprint.sort_unstable();
    Ok((keys, fingerprint))
}

fn usable_key(value: Value) -> Result<(JwtKey, String), Skip> {
    let jwk: Jwk = serde_json::from_value(value)
        .map_err(|e| Skip::Unusable(format!("not a supported JWK: {e}")))?;
    let common = &jwk.common;
    if common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
        || common
            .key_operations
            .as_ref()
            .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return Err(Skip::NotForSignatures);
    }
    match &jwk.algorithm {
        AlgorithmParameters::OctetKey(_) => {
            return Err(Skip::Unusable(
                "symmetric (oct) keys are not taken from a remote set".into(),
            ));
        }
        AlgorithmParameters::Other(_) => {
            return Err(Skip::Unusable("unsupported key type".into()));
        }
        _ => {}
    }
    let key = match JwtKey::from_jwk(&jwk) {
        Ok(key) => key,
        Err(KeyError::NoAlgorithm)
            if common.key_algorithm.is_none()
                && matches!(jwk.algorithm, AlgorithmParameters::RSA(_)) =>
        {
            let mut rs256 = jwk.clone();
            rs256.common.key_algorithm = Some(KeyAlgorithm::RS256);
            JwtKey::from_jwk(&rs256).map_err(|e| Skip::Unusable(e.to_string()))?
        }
        Err(e) => return Err(Skip::Unusable(e.to_string())),
    };
    let print = serde_json::to_string(&jwk).map_err(|e| Skip::Unusable(e.to_string()))?;
    Ok((key, print))
}
