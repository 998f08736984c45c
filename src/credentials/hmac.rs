//! [`HmacSigner`]: signs each call with an HMAC in the Tyk / draft-cavage format.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue};
use tonic::Status;

use super::{CallContext, CallCredentials};
use crate::Secret;
use crate::clock::{self, Clock};
use crate::wire::hmac::{
    HmacAlgorithm, REQUEST_TARGET, encode_signature, push_line, push_request_target,
};

/// The nonce header the signer adds by default.
pub(crate) const DEFAULT_NONCE_HEADER: &str = "x-nonce";

/// Signs each call: sets `date` (IMF-fixdate, from its clock) and a random nonce, then
/// `authorization: Signature keyId="..",algorithm="..",headers="..",signature=".."` over
/// the listed headers, with `(request-target)` = `post <method path>`.
///
/// Defaults: hmac-sha256; headers `(request-target) date x-nonce`; the signature
/// URL-encoded (`%2B`, `%2F`, `%3D`), the form Tyk's gateway compares against and this
/// crate's verifier accepts. The nonce (16 random bytes, base64url) keeps two calls to
/// one method within the same second from looking like a replay. Needs a secure
/// transport, like every credential here.
///
/// ```
/// use grpc_auth::authn::hmac::HmacAlgorithm;
/// use grpc_auth::credentials::HmacSigner;
/// // Tyk-demo style: SHA-512 over the date alone.
/// let tyk = HmacSigner::new("key-1", "c2VjcmV0")
///     .algorithm(HmacAlgorithm::Sha512)
///     .headers(["date"])
///     .no_nonce();
/// // Also sign a metadata entry the caller sets.
/// let strict = HmacSigner::new("key-2", "s3cret").headers(["(request-target)", "date", "x-tenant"]);
/// assert!(!format!("{tyk:?} {strict:?}").contains("c2VjcmV0"));
/// ```
#[derive(Clone)]
pub struct HmacSigner {
    key_id: String,
    secret: Secret,
    algorithm: HmacAlgorithm,
    headers: Vec<String>,
    nonce: Option<HeaderName>,
    url_encode: bool,
    clock: Arc<dyn Clock>,
}

impl HmacSigner {
    /// Signs as `key_id` with `secret` (its bytes are the HMAC key as given).
    pub fn new(key_id: impl Into<String>, secret: impl Into<Secret>) -> Self {
        Self {
            key_id: key_id.into(),
            secret: secret.into(),
            algorithm: HmacAlgorithm::Sha256,
            headers: vec![REQUEST_TARGET.to_owned(), "date".to_owned()],
            nonce: Some(HeaderName::from_static(DEFAULT_NONCE_HEADER)),
            url_encode: true,
            clock: clock::system(),
        }
    }

    /// Sets the algorithm (default hmac-sha256).
    pub fn algorithm(mut self, algorithm: HmacAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Sets the signed headers, in order: `(request-target)`, `date`, or metadata keys
    /// the call carries (a missing one fails the call). The nonce header, when on, is
    /// appended. Default: `(request-target) date`.
    pub fn headers<I, S>(mut self, headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.headers = headers
            .into_iter()
            .map(|h| h.as_ref().trim().to_ascii_lowercase())
            .collect();
        self
    }

    /// Sends the nonce under `header` instead of `x-nonce`.
    pub fn nonce_header(mut self, header: &str) -> Result<Self, http::header::InvalidHeaderName> {
        self.nonce = Some(HeaderName::from_bytes(header.as_bytes())?);
        Ok(self)
    }

    /// Sends no nonce (the Tyk demo's format). Two calls to one method within the same
    /// second then carry the same signature, and a verifier with replay protection
    /// refuses the second.
    pub fn no_nonce(mut self) -> Self {
        self.nonce = None;
        self
    }

    /// Sends the signature as plain base64 instead of URL-encoded.
    pub fn plain_base64(mut self) -> Self {
        self.url_encode = false;
        self
    }

    /// Reads the time from `clock`.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Adds `date`, the nonce and `authorization` for a call to `method_path`.
    pub fn sign(&self, method_path: &str, metadata: &mut HeaderMap) -> Result<(), Status> {
        if self.key_id.is_empty()
            || !self
                .key_id
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            return Err(Status::unauthenticated(
                "HMAC key id must be visible ASCII without quotes or backslashes",
            ));
        }
        let date = httpdate::fmt_http_date(self.clock.now());
        metadata.insert(
            http::header::DATE,
            HeaderValue::try_from(date)
                .map_err(|_| Status::unauthenticated("date is not a valid metadata value"))?,
        );
        let mut listed: Vec<&str> = self.headers.iter().map(String::as_str).collect();
        if let Some(name) = &self.nonce {
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes)
                .map_err(|_| Status::unavailable("no randomness for the HMAC nonce"))?;
            let value = HeaderValue::try_from(URL_SAFE_NO_PAD.encode(bytes))
                .map_err(|_| Status::unauthenticated("nonce is not a valid metadata value"))?;
            metadata.insert(name.clone(), value);
            if !listed.contains(&name.as_str()) {
                listed.push(name.as_str());
            }
        }
        let mut signing = String::with_capacity(256);
        for name in &listed {
            if *name == REQUEST_TARGET {
                push_request_target(&mut signing, "post", method_path);
                continue;
            }
            let value = metadata
                .get(*name)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    Status::unauthenticated(format!(
                        "cannot sign {name}: no such ASCII metadata on the call"
                    ))
                })?;
            push_line(&mut signing, name, value);
        }
        let mac = self.algorithm.mac(self.secret.expose(), signing.as_bytes());
        let value = format!(
            "Signature keyId=\"{}\",algorithm=\"{}\",headers=\"{}\",signature=\"{}\"",
            self.key_id,
            self.algorithm.name(),
            listed.join(" "),
            encode_signature(&mac, self.url_encode),
        );
        let mut value = HeaderValue::try_from(value).map_err(|_| {
            Status::unauthenticated("HMAC authorization is not a valid metadata value")
        })?;
        value.set_sensitive(true);
        metadata.insert(AUTHORIZATION, value);
        Ok(())
    }
}

impl CallCredentials for HmacSigner {
    async fn apply(&self, ctx: &CallContext<'_>, metadata: &mut HeaderMap) -> Result<(), Status> {
        self.sign(&ctx.method_path(), metadata)
    }
}

impl fmt::Debug for HmacSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacSigner")
            .field("key_id", &self.key_id)
            .field("algorithm", &self.algorithm)
            .field("headers", &self.headers)
            .field("nonce", &self.nonce)
            .field("url_encode", &self.url_encode)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    //! The signer checked against the spec (`hmac`/`sha2`/`base64` directly) and Tyk's
    //! gateway rules, then against this crate's verifier.
    use std::time::Duration;

    use base64::engine::general_purpose::STANDARD;
    use hmac::{Hmac, Mac};
    use sha2::{Sha256, Sha512};

    use super::*;
    use crate::authn::hmac::{HmacVerifier, StaticHmacKeys};
    use crate::clock::ManualClock;

    const NOW: u64 = 1_700_000_000;
    const DATE: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
    const PATH: &str = "/helloworld.Greeter/SayHello";
    const SECRET: &str = "s3cret";

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn clock() -> ManualClock {
        ManualClock::at_unix(NOW)
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

    #[test]
    fn date_is_imf_fixdate() {
        assert_eq!(
            httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(NOW)),
            DATE
        );
    }

    fn sign(signer: &HmacSigner) -> HeaderMap {
        let mut h = HeaderMap::new();
        let ctx = CallContext::new("https://g.example/helloworld.Greeter", "SayHello", true);
        run(signer.apply(&ctx, &mut h)).unwrap();
        h
    }

    fn param<'a>(auth: &'a str, name: &str) -> &'a str {
        let start = auth.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        let len = auth[start..].find('"').unwrap();
        &auth[start..start + len]
    }

    #[test]
    fn signer_output_matches_the_spec_and_tyks_gateway_rules() {
        let h = sign(&HmacSigner::new("k1", SECRET).clock(clock()));
        assert_eq!(h["date"], DATE);
        let nonce = h["x-nonce"].to_str().unwrap();
        assert_eq!(nonce.len(), 22, "16 bytes, base64url without padding");
        let auth = h["authorization"].to_str().unwrap();
        assert!(h["authorization"].is_sensitive());
        assert!(auth.starts_with("Signature keyId=\"k1\",algorithm=\"hmac-sha256\","));
        assert_eq!(param(auth, "headers"), "(request-target) date x-nonce");
        // Tyk: url.QueryEscape(base64(HMAC(secret, signing string))), compared as text.
        let expected = format!("{}\nx-nonce: {nonce}", signing_string(DATE));
        assert_eq!(
            param(auth, "signature"),
            quote_plus(&sha256_b64(SECRET, &expected))
        );
        // And this crate's verifier accepts it.
        assert_eq!(
            run(HmacVerifier::new(StaticHmacKeys::new().key("k1", SECRET))
                .clock(clock())
                .verify("POST", PATH, &h))
            .unwrap()
            .key_id,
            "k1"
        );
    }

    #[test]
    fn signer_in_tyk_demo_mode_matches_hmac_sh() {
        let h = sign(
            &HmacSigner::new("k1", "c2VjcmV0")
                .clock(clock())
                .algorithm(HmacAlgorithm::Sha512)
                .headers(["date"])
                .no_nonce(),
        );
        assert!(h.get("x-nonce").is_none());
        let auth = h["authorization"].to_str().unwrap();
        assert_eq!(param(auth, "algorithm"), "hmac-sha512");
        assert_eq!(param(auth, "headers"), "date");
        assert_eq!(
            param(auth, "signature"),
            quote_plus(&sha512_b64("c2VjcmV0", &format!("date: {DATE}")))
        );
    }

    #[test]
    fn signer_options() {
        let h = sign(
            &HmacSigner::new("k1", SECRET)
                .clock(clock())
                .plain_base64()
                .no_nonce(),
        );
        let auth = h["authorization"].to_str().unwrap();
        assert_eq!(
            param(auth, "signature"),
            sha256_b64(SECRET, &signing_string(DATE))
        );
        let h = sign(
            &HmacSigner::new("k1", SECRET)
                .clock(clock())
                .nonce_header("x-request-nonce")
                .unwrap(),
        );
        assert!(h.contains_key("x-request-nonce"));
        assert_eq!(
            param(h["authorization"].to_str().unwrap(), "headers"),
            "(request-target) date x-request-nonce"
        );
    }

    #[test]
    fn signer_refuses_what_it_cannot_sign() {
        let ctx = CallContext::new("https://g.example/helloworld.Greeter", "SayHello", true);
        let mut h = HeaderMap::new();
        let s = HmacSigner::new("k1", SECRET).headers(["date", "x-tenant"]);
        let e = run(s.apply(&ctx, &mut h)).unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (
                tonic::Code::Unauthenticated,
                "cannot sign x-tenant: no such ASCII metadata on the call"
            )
        );
        let s = HmacSigner::new("a\"b", SECRET);
        let e = run(s.apply(&ctx, &mut h)).unwrap_err();
        assert_eq!(
            e.message(),
            "HMAC key id must be visible ASCII without quotes or backslashes"
        );
        assert!(s.requires_transport_security());
    }
}
