//! The verified-token cache: an accepted token's principal, kept until the earlier
//! of its `exp` and a TTL, so that a repeated RS256/ES256 token skips the signature
//! check. Only accepted tokens go in; policy is still checked on every call by the
//! layer.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use zeroize::Zeroize;

use crate::authn::verified::VerifiedCache;

/// Default lifetime of a cached verification: 5 minutes (never past the token's `exp`).
pub(crate) const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
/// Default number of cached tokens.
pub(crate) const DEFAULT_CACHE_CAPACITY: usize = 10_000;

/// A cached token. The whole token is the key, so two tokens can never share an entry
/// (no hash collision can hand one token's principal to another); it is wiped when
/// the entry is dropped.
pub(crate) struct CachedToken(String);

impl Borrow<str> for CachedToken {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl Hash for CachedToken {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must hash as `str` does, for lookups by `&str`.
        self.0.as_str().hash(state);
    }
}

impl PartialEq for CachedToken {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for CachedToken {}

impl Drop for CachedToken {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// The verified-token cache: accepted tokens by their whole text, per configuration.
pub(crate) type TokenCache = VerifiedCache<CachedToken>;

/// A cache entry's key: the token.
pub(crate) fn key(token: &str) -> CachedToken {
    CachedToken(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Principal;
    use crate::authn::verified::ConfigId;

    thread_local! {
        static CFG: ConfigId = ConfigId::fresh();
    }

    fn cfg() -> ConfigId {
        CFG.with(|c| *c)
    }

    /// A clock at `secs` (wall time; its monotonic time starts at 0).
    fn at(secs: u64) -> crate::clock::ManualClock {
        crate::clock::ManualClock::at_unix(secs)
    }

    fn p(sub: &str) -> Principal {
        Principal::new(sub, "jwt")
    }

    #[test]
    fn serves_until_the_earlier_of_exp_and_ttl() {
        let c = TokenCache::new(Duration::from_secs(300), 16);
        c.insert(cfg(), key("t1"), p("ada"), Some(1_100), &at(1_000), 0);
        assert_eq!(c.get(cfg(), "t1", &at(1_099), 0).unwrap().subject(), "ada");
        assert!(
            c.get(cfg(), "t1", &at(1_100), 0).is_none(),
            "never at or past exp"
        );
        assert_eq!(c.len(), 0, "a stale entry is dropped");

        c.insert(cfg(), key("t2"), p("bob"), Some(10_000), &at(1_000), 0);
        assert_eq!(c.get(cfg(), "t2", &at(1_299), 0).unwrap().subject(), "bob");
        assert!(
            c.get(cfg(), "t2", &at(1_300), 0).is_none(),
            "TTL bounds it too"
        );

        c.insert(cfg(), key("t3"), p("cy"), None, &at(1_000), 0);
        assert!(c.get(cfg(), "t3", &at(1_299), 0).is_some());
        assert!(c.get(cfg(), "t3", &at(1_300), 0).is_none());
    }

    #[test]
    fn an_expired_token_is_not_cached() {
        let c = TokenCache::new(Duration::from_secs(300), 16);
        c.insert(cfg(), key("t"), p("ada"), Some(1_000), &at(1_000), 0);
        c.insert(cfg(), key("u"), p("bob"), Some(900), &at(1_000), 0);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn a_key_set_change_invalidates() {
        let c = TokenCache::new(Duration::from_secs(300), 16);
        c.insert(cfg(), key("t"), p("ada"), Some(2_000), &at(1_000), 7);
        assert!(c.get(cfg(), "t", &at(1_001), 8).is_none());
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn tokens_are_told_apart_by_their_whole_text() {
        let c = TokenCache::new(Duration::from_secs(300), 16);
        c.insert(
            cfg(),
            key("aaa.bbb.ccc"),
            p("ada"),
            Some(2_000),
            &at(1_000),
            0,
        );
        assert!(c.get(cfg(), "aaa.bbb.ccd", &at(1_001), 0).is_none());
        assert!(c.get(cfg(), "aaa.bbb.cc", &at(1_001), 0).is_none());
        assert_eq!(
            c.get(cfg(), "aaa.bbb.ccc", &at(1_001), 0)
                .unwrap()
                .subject(),
            "ada"
        );
    }

    #[test]
    fn bounded() {
        let c = TokenCache::new(Duration::from_secs(300), 8);
        for i in 0..1_000 {
            c.insert(
                cfg(),
                key(&format!("token-{i}")),
                p("x"),
                Some(2_000),
                &at(1_000),
                0,
            );
        }
        assert!(c.len() <= 8 + 1, "len {}", c.len());
    }

    #[test]
    fn debug_shows_no_token() {
        let c = TokenCache::new(Duration::from_secs(300), 8);
        c.insert(
            cfg(),
            key("secret.token.value"),
            p("x"),
            Some(2_000),
            &at(1_000),
            0,
        );
        assert!(!format!("{c:?}").contains("secret"));
    }

    /// Through the authenticator: what is verified, and when.
    mod through_the_authenticator {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

        use http::HeaderMap;
        use jsonwebtoken::{Algorithm, EncodingKey, Header};
        use serde_json::json;
        use tonic::Code;

        use crate::AuthError;
        use crate::authn::jwt::{
            JwtAuthenticator, JwtKey, KeyQuery, KeySet, KeySource, install_crypto_provider,
        };
        use crate::authn::{AuthRequest, Authenticator};
        use crate::clock::ManualClock;

        const NOW: u64 = 1_700_000_000;
        const RSA_PRIVATE: &[u8] = include_bytes!("../../../tests/keys/rsa_private.pem");
        const RSA_PUBLIC: &[u8] = include_bytes!("../../../tests/keys/rsa_public.pem");

        /// Static keys that count lookups and whose generation and keys a test sets.
        #[derive(Clone)]
        struct Counting {
            keys: Arc<std::sync::Mutex<Arc<KeySet>>>,
            lookups: Arc<AtomicUsize>,
            generation: Arc<AtomicU64>,
        }

        impl Counting {
            fn new() -> Self {
                let key = JwtKey::from_pem(Algorithm::RS256, RSA_PUBLIC).unwrap();
                Self {
                    keys: Arc::new(std::sync::Mutex::new(Arc::new(KeySet::new(vec![key])))),
                    lookups: Arc::default(),
                    generation: Arc::default(),
                }
            }
            fn lookups(&self) -> usize {
                self.lookups.load(Ordering::SeqCst)
            }
        }

        impl KeySource for Counting {
            async fn keys(&self, _query: KeyQuery<'_>) -> Result<Arc<KeySet>, AuthError> {
                self.lookups.fetch_add(1, Ordering::SeqCst);
                Ok(self.keys.lock().unwrap().clone())
            }
            fn generation(&self) -> u64 {
                self.generation.load(Ordering::SeqCst)
            }
        }

        fn token(sub: &str, exp: u64) -> String {
            install_crypto_provider();
            let key = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
            let claims = json!({ "sub": sub, "exp": exp, "scope": "read" });
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap()
        }

        async fn call<K: KeySource>(
            a: &JwtAuthenticator<K>,
            token: &str,
        ) -> Result<String, (Code, String)> {
            let mut headers = HeaderMap::new();
            headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
            match a.authenticate(&AuthRequest::new("/a.B/C", &headers)).await {
                Ok(Some(auth)) => Ok(auth.principal.subject().to_owned()),
                Ok(None) => Err((Code::Ok, "absent".into())),
                Err(e) => Err((e.code(), e.to_string())),
            }
        }

        fn setup() -> (Counting, ManualClock, JwtAuthenticator<Counting>) {
            let keys = Counting::new();
            let clock = ManualClock::at_unix(NOW);
            let a = JwtAuthenticator::new(keys.clone()).clock(clock.clone());
            (keys, clock, a)
        }

        #[tokio::test]
        async fn a_repeated_token_is_verified_once() {
            let (keys, _clock, a) = setup();
            let t = token("ada", NOW + 3600);
            for _ in 0..5 {
                assert_eq!(call(&a, &t).await, Ok("ada".to_owned()));
            }
            assert_eq!(keys.lookups(), 1);
            // A clone shares the cache.
            assert_eq!(call(&a.clone(), &t).await, Ok("ada".to_owned()));
            assert_eq!(keys.lookups(), 1);
            // Another token is verified.
            assert_eq!(
                call(&a, &token("bob", NOW + 3600)).await,
                Ok("bob".to_owned())
            );
            assert_eq!(keys.lookups(), 2);
        }

        /// A token with an audience and an issuer.
        fn token_for(aud: &str, iss: &str) -> String {
            install_crypto_provider();
            let key = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
            let claims = json!({ "sub": "ada", "exp": NOW + 3600, "aud": aud, "iss": iss, "x": 1 });
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap()
        }

        #[tokio::test]
        async fn clones_configured_differently_never_serve_each_others_entries() {
            // The reported defect: svc-b accepted a token svc-a had cached, unchecked.
            let (keys, _clock, base) = setup();
            let svc_a = base.clone().audience("svc-a");
            let svc_b = base.clone().audience("svc-b");
            let t = token_for("svc-a", "https://idp-1");
            assert_eq!(call(&svc_a, &t).await, Ok("ada".to_owned()));
            assert_eq!(
                call(&svc_b, &t).await,
                Err((Code::Unauthenticated, "invalid token audience".to_owned()))
            );
            assert_eq!(keys.lookups(), 2);
            // Issuer, required claims, leeway and the scheme name are configuration too.
            let open = base.clone();
            assert_eq!(call(&open, &t).await, Ok("ada".to_owned()));
            let iss = open.clone().issuer("https://idp-2");
            assert_eq!(
                call(&iss, &t).await,
                Err((Code::Unauthenticated, "invalid token issuer".to_owned()))
            );
            let req = open.clone().required_claims(["exp", "sub", "tenant"]);
            assert_eq!(
                call(&req, &t).await,
                Err((
                    Code::Unauthenticated,
                    "token lacks required claim: tenant".to_owned()
                ))
            );
            let named = open.clone().scheme("idp");
            let mut headers = HeaderMap::new();
            headers.insert("authorization", format!("Bearer {t}").parse().unwrap());
            let got = named
                .authenticate(&AuthRequest::new("/a.B/C", &headers))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(got.principal.scheme(), "idp");
            // The unchanged clone still shares (and hits) the cache.
            let before = keys.lookups();
            assert_eq!(call(&open.clone(), &t).await, Ok("ada".to_owned()));
            assert_eq!(keys.lookups(), before);
        }

        #[tokio::test]
        async fn a_shorter_leeway_on_a_clone_is_not_bypassed_by_the_cache() {
            // Not valid for 30 s more: within the default 60 s leeway, not within 0.
            install_crypto_provider();
            let key = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
            let claims = json!({ "sub": "ada", "exp": NOW + 3600, "nbf": NOW + 30 });
            let t = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap();
            let (_keys, _clock, base) = setup();
            assert_eq!(call(&base, &t).await, Ok("ada".to_owned()));
            let strict = base.clone().leeway(std::time::Duration::ZERO);
            assert_eq!(
                call(&strict, &t).await,
                Err((Code::Unauthenticated, "token not yet valid".to_owned()))
            );
        }

        #[tokio::test]
        async fn a_cached_token_is_never_accepted_past_its_exp() {
            let (keys, clock, a) = setup();
            let a = a.leeway(std::time::Duration::ZERO);
            let t = token("ada", NOW + 10);
            assert_eq!(call(&a, &t).await, Ok("ada".to_owned()));
            clock.advance(std::time::Duration::from_secs(9));
            assert_eq!(call(&a, &t).await, Ok("ada".to_owned()));
            assert_eq!(keys.lookups(), 1, "served from the cache before exp");
            clock.advance(std::time::Duration::from_secs(2));
            assert_eq!(
                call(&a, &t).await,
                Err((Code::Unauthenticated, "token expired".to_owned()))
            );
            assert_eq!(keys.lookups(), 2, "re-verified past exp");
        }

        #[tokio::test]
        async fn the_ttl_bounds_an_entry() {
            let (keys, clock, a) = setup();
            let a = a.cache(std::time::Duration::from_secs(30), 100);
            let t = token("ada", NOW + 3600);
            call(&a, &t).await.unwrap();
            clock.advance(std::time::Duration::from_secs(29));
            call(&a, &t).await.unwrap();
            assert_eq!(keys.lookups(), 1);
            clock.advance(std::time::Duration::from_secs(1));
            call(&a, &t).await.unwrap();
            assert_eq!(keys.lookups(), 2);
        }

        #[tokio::test]
        async fn a_key_change_makes_cached_tokens_verify_again() {
            let (keys, _clock, a) = setup();
            let t = token("ada", NOW + 3600);
            call(&a, &t).await.unwrap();
            // The key is removed (rotation): the source's generation moves on.
            *keys.keys.lock().unwrap() = Arc::new(KeySet::new(Vec::new()));
            keys.generation.fetch_add(1, Ordering::SeqCst);
            assert_eq!(
                call(&a, &t).await,
                Err((
                    Code::Unauthenticated,
                    "no key for the token's algorithm".to_owned()
                ))
            );
            assert_eq!(keys.lookups(), 2);
        }

        #[tokio::test]
        async fn failures_are_not_cached() {
            let (keys, _clock, a) = setup();
            let mut t = token("ada", NOW + 3600);
            t.pop();
            t.push('A');
            for _ in 0..3 {
                assert_eq!(call(&a, &t).await.unwrap_err().0, Code::Unauthenticated);
            }
            assert_eq!(keys.lookups(), 3);
        }

        #[tokio::test]
        async fn switched_off_every_call_verifies() {
            let (keys, _clock, a) = setup();
            let a = a.no_cache();
            let t = token("ada", NOW + 3600);
            for _ in 0..3 {
                call(&a, &t).await.unwrap();
            }
            assert_eq!(keys.lookups(), 3);
            let b = JwtAuthenticator::new(keys.clone())
                .clock(ManualClock::at_unix(NOW))
                .cache(std::time::Duration::from_secs(60), 0);
            call(&b, &t).await.unwrap();
            call(&b, &t).await.unwrap();
            assert_eq!(keys.lookups(), 5, "capacity 0 is off");
        }

        #[tokio::test]
        async fn the_cached_principal_keeps_its_scopes() {
            let (_keys, _clock, a) = setup();
            let t = token("ada", NOW + 3600);
            let mut headers = HeaderMap::new();
            headers.insert("authorization", format!("Bearer {t}").parse().unwrap());
            let req = AuthRequest::new("/a.B/C", &headers);
            let first = a.authenticate(&req).await.unwrap().unwrap().principal;
            let second = a.authenticate(&req).await.unwrap().unwrap().principal;
            assert!(first.has_scope("read") && second.has_scope("read"));
            assert_eq!(second.claims()["sub"], "ada");
        }
    }
}
