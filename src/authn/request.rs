//! [`AuthRequest`]: what an authenticator sees of a call, and the `authorization` parser.

use std::net::SocketAddr;

use http::{Extensions, HeaderMap, HeaderName, header::AUTHORIZATION};
use tonic::transport::server::TcpConnectInfo;

use crate::AuthError;
use crate::secret::RedactedHeaders;

/// Default bound on one credential-bearing metadata value: 8 KiB.
pub(crate) const DEFAULT_MAX_VALUE_LEN: usize = 8 * 1024;

/// What an authenticator sees of a call: the method path, the metadata and the
/// request extensions (where connection facts such as a TLS peer certificate live).
/// Not the body: gRPC bodies stream.
///
/// Built by the layer; build one yourself to call an authenticator outside it.
///
/// ```
/// use grpc_auth::authn::AuthRequest;
/// let mut headers = http::HeaderMap::new();
/// headers.insert("authorization", "bearer abc".parse().unwrap());
/// let req = AuthRequest::new("/helloworld.Greeter/SayHello", &headers);
/// let auth = req.authorization().unwrap().unwrap();
/// assert!(auth.is_scheme("Bearer"));
/// assert_eq!(auth.credentials(), "abc");
/// ```
#[derive(Clone, Copy)]
pub struct AuthRequest<'a> {
    method: &'a str,
    headers: &'a HeaderMap,
    extensions: Option<&'a Extensions>,
    max_value_len: usize,
    claimed: Option<&'a Claimed<'a>>,
    reads: Option<&'a Reads>,
}

/// A verified client certificate chain, leaf first (DER).
#[derive(Clone, Debug)]
pub struct PeerCertificates(std::sync::Arc<Vec<tonic::transport::CertificateDer<'static>>>);

impl PeerCertificates {
    /// A chain (DER, leaf first) another party verified: Envoy's, for the ext_authz
    /// server. Crate-private: only this crate's servers put one in the extensions.
    #[cfg(feature = "ext-authz")]
    pub(crate) fn from_der(chain: Vec<Vec<u8>>) -> Self {
        Self(std::sync::Arc::new(
            chain
                .into_iter()
                .map(tonic::transport::CertificateDer::from)
                .collect(),
        ))
    }

    /// The chain, leaf first (empty: TLS without a client certificate).
    pub(crate) fn chain(&self) -> &[tonic::transport::CertificateDer<'static>] {
        &self.0
    }

    /// The client's own certificate (DER).
    pub fn leaf(&self) -> Option<&[u8]> {
        self.0.first().map(|c| c.as_ref())
    }

    /// The SHA-256 thumbprint of the leaf, base64url without padding (RFC 8705's
    /// `x5t#S256`).
    pub fn leaf_thumbprint(&self) -> Option<String> {
        use base64::Engine as _;
        use sha2::Digest as _;
        let leaf = self.leaf()?;
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(leaf)))
    }
}

/// The TLS client chain of a call: tonic's TLS server's (from its connection info), or
/// one this crate's ext_authz server took from Envoy; empty for TLS without a client
/// certificate, `None` without TLS.
pub(crate) fn peer_certificates(extensions: &Extensions) -> Option<PeerCertificates> {
    if let Some(certs) = extensions.get::<PeerCertificates>() {
        return Some(certs.clone());
    }
    let info = extensions.get::<tonic::transport::server::TlsConnectInfo<TcpConnectInfo>>()?;
    // TLS without a client certificate: one shared empty chain, no allocation per call.
    type Chain = std::sync::Arc<Vec<tonic::transport::CertificateDer<'static>>>;
    static NONE: std::sync::OnceLock<Chain> = std::sync::OnceLock::new();
    Some(PeerCertificates(info.peer_certs().unwrap_or_else(|| {
        NONE.get_or_init(|| std::sync::Arc::new(Vec::new())).clone()
    })))
}

/// The metadata keys a scheme read through [`AuthRequest::single_value`] (and so
/// [`AuthRequest::authorization`]): what a scheme that names no credential is taken to
/// have judged, once it accepted. Each composition step records its own schemes; what a
/// scheme that declined read is never credited to another.
#[derive(Default)]
pub(crate) struct Reads {
    names: std::sync::Mutex<Vec<HeaderName>>,
}

impl Reads {
    fn note(&self, name: &HeaderName) {
        let mut names = self
            .names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !names.contains(name) {
            names.push(name.clone());
        }
    }

    /// The keys read.
    pub(crate) fn taken(self) -> Vec<HeaderName> {
        self.names
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Metadata entries an earlier scheme of an any-of already accepted: the schemes after
/// it do not judge them again (a chain, innermost first).
#[derive(Clone, Copy)]
pub(crate) struct Claimed<'a> {
    names: &'a [HeaderName],
    outer: Option<&'a Claimed<'a>>,
}

impl<'a> AuthRequest<'a> {
    /// A request for `method` (`/package.Service/Method`) carrying `headers`.
    pub fn new(method: &'a str, headers: &'a HeaderMap) -> Self {
        Self {
            method,
            headers,
            extensions: None,
            max_value_len: DEFAULT_MAX_VALUE_LEN,
            claimed: None,
            reads: None,
        }
    }

    /// Adds the request extensions.
    pub fn with_extensions(mut self, extensions: &'a Extensions) -> Self {
        self.extensions = Some(extensions);
        self
    }

    /// Sets the bound on a credential-bearing value's length.
    pub fn with_max_value_len(mut self, max: usize) -> Self {
        self.max_value_len = max;
        self
    }

    /// This request with `names` hidden from [`single_value`](Self::single_value) and
    /// [`authorization`](Self::authorization): what an earlier scheme accepted.
    pub(crate) fn claiming<'b>(&self, claimed: &'b Claimed<'b>) -> AuthRequest<'b>
    where
        'a: 'b,
    {
        AuthRequest {
            claimed: Some(claimed),
            ..*self
        }
    }

    /// This request, noting the keys read into `reads`.
    pub(crate) fn recording<'b>(&self, reads: &'b Reads) -> AuthRequest<'b>
    where
        'a: 'b,
    {
        AuthRequest {
            reads: Some(reads),
            ..*self
        }
    }

    /// A link for [`claiming`](Self::claiming): `names` on top of what is already claimed.
    pub(crate) fn claim<'b>(&self, names: &'b [HeaderName]) -> Claimed<'b>
    where
        'a: 'b,
    {
        Claimed {
            names,
            outer: self.claimed,
        }
    }

    fn is_claimed(&self, name: &HeaderName) -> bool {
        let mut link = self.claimed;
        while let Some(c) = link {
            if c.names.contains(name) {
                return true;
            }
            link = c.outer;
        }
        false
    }

    /// The full method path, `/package.Service/Method`.
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// All request metadata, as received (including entries an earlier scheme of an
    /// any-of accepted; read credentials with [`single_value`](Self::single_value)).
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// The request extensions, when the caller provided them.
    pub fn extensions(&self) -> Option<&'a Extensions> {
        self.extensions
    }

    /// The caller's address, from the connection info tonic's server puts in the
    /// request extensions (over TLS too: tonic adds the TCP info beside the TLS info);
    /// `None` outside a tonic server.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.extensions?.get::<TcpConnectInfo>()?.remote_addr()
    }

    /// The client certificate chain (DER, leaf first) tonic's TLS server verified for
    /// this connection; `None` without TLS or when the client sent none.
    pub fn peer_certificates(&self) -> Option<PeerCertificates> {
        peer_certificates(self.extensions?).filter(|c| !c.chain().is_empty())
    }

    /// The single value of metadata `name` as ASCII text, or `None` when absent.
    ///
    /// Rejects (`UNAUTHENTICATED`) a repeated entry, a value over the size limit,
    /// and a value that is not visible ASCII. The message names the key, never the value.
    ///
    /// Inside an [`AnyOf`](super::AnyOf), an entry an earlier scheme already accepted
    /// reads as absent here, so one credential is judged by the scheme that owns it.
    pub fn single_value(&self, name: &HeaderName) -> Result<Option<&'a str>, AuthError> {
        if self.claimed.is_some() && self.is_claimed(name) {
            return Ok(None);
        }
        if let Some(reads) = self.reads {
            reads.note(name);
        }
        single_entry(self.headers, name, self.max_value_len).map_err(|e| {
            AuthError::unauthenticated(match e {
                EntryError::Repeated => format!("multiple {name} metadata entries"),
                EntryError::Oversized(max) => format!("{name} metadata exceeds {max} bytes"),
                EntryError::NotAscii => format!("{name} metadata is not valid ASCII"),
            })
        })
    }

    /// The bound on a credential-bearing value's length.
    pub(crate) fn max_value_len(&self) -> usize {
        self.max_value_len
    }

    /// The parsed `authorization` entry, or `None` when there is none.
    ///
    /// Rejects a repeated entry, an oversized or non-ASCII value, and a scheme
    /// without credentials (`"Bearer"` alone).
    pub fn authorization(&self) -> Result<Option<Authorization<'a>>, AuthError> {
        let Some(value) = self.single_value(&AUTHORIZATION)? else {
            return Ok(None);
        };
        Authorization::parse(value).map(Some)
    }
}

/// Shows the method and the metadata keys; values are never shown (h2 does not mark
/// received values sensitive, and any of them may carry a credential).
impl std::fmt::Debug for AuthRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthRequest")
            .field("method", &self.method)
            .field("metadata", &RedactedHeaders(self.headers))
            .field("max_value_len", &self.max_value_len)
            .finish_non_exhaustive()
    }
}

/// Why a credential-bearing metadata entry was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryError {
    /// The entry appears more than once.
    Repeated,
    /// The value is longer than the bound (in bytes).
    Oversized(usize),
    /// The value is not visible ASCII.
    NotAscii,
}

/// The single value of metadata `name` as ASCII text, at most `max` bytes, or `None`
/// when absent: the one way every scheme reads a credential-bearing entry.
#[inline]
pub(crate) fn single_entry<K: http::header::AsHeaderName>(
    headers: &HeaderMap,
    name: K,
    max: usize,
) -> Result<Option<&str>, EntryError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(EntryError::Repeated);
    }
    if value.len() > max {
        return Err(EntryError::Oversized(max));
    }
    value.to_str().map(Some).map_err(|_| EntryError::NotAscii)
}

/// An `authorization` value split into `Scheme SP credentials` (RFC 7235).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Authorization<'a> {
    scheme: &'a str,
    credentials: &'a str,
}

impl<'a> Authorization<'a> {
    /// Parses `Scheme credentials`. The scheme is matched case-insensitively later.
    pub fn parse(value: &'a str) -> Result<Self, AuthError> {
        // RFC 9110 whitespace is SP and HTAB only (Unicode spaces are not separators).
        const WS: [char; 2] = [' ', '\t'];
        let value = value.trim_matches(WS);
        let (scheme, credentials) = value.split_once(WS).unwrap_or((value, ""));
        let credentials = credentials.trim_matches(WS);
        if scheme.is_empty() {
            return Err(AuthError::unauthenticated("empty authorization metadata"));
        }
        if credentials.is_empty() {
            return Err(AuthError::unauthenticated(
                "authorization scheme has no credentials",
            ));
        }
        Ok(Self {
            scheme,
            credentials,
        })
    }

    /// The scheme as sent.
    pub fn scheme(&self) -> &'a str {
        self.scheme
    }

    /// Whether the scheme is `scheme`, ignoring ASCII case.
    pub fn is_scheme(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }

    /// The credentials after the scheme, trimmed.
    pub fn credentials(&self) -> &'a str {
        self.credentials
    }
}

impl std::fmt::Debug for Authorization<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorization")
            .field("scheme", &self.scheme)
            .field("credentials", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_bytes(v).expect("header"));
        }
        h
    }

    fn parse(values: &[&[u8]]) -> Result<Option<(String, String)>, AuthError> {
        let h = headers(values);
        let r = AuthRequest::new("/a.B/C", &h);
        r.authorization()
            .map(|o| o.map(|a| (a.scheme().to_owned(), a.credentials().to_owned())))
    }

    fn err(values: &[&[u8]]) -> String {
        parse(values).expect_err("should reject").to_string()
    }

    #[test]
    fn absent_is_none() {
        assert_eq!(parse(&[]), Ok(None));
    }

    #[test]
    fn scheme_and_credentials_are_split_and_trimmed() {
        assert_eq!(
            parse(&[b"Bearer   abc.def "]),
            Ok(Some(("Bearer".into(), "abc.def".into())))
        );
    }

    #[test]
    fn lower_case_scheme_matches() {
        let h = headers(&[b"bearer abc"]);
        let r = AuthRequest::new("/a.B/C", &h);
        assert!(r.authorization().unwrap().unwrap().is_scheme("Bearer"));
    }

    #[test]
    fn scheme_alone_is_rejected() {
        assert_eq!(err(&[b"Bearer"]), "authorization scheme has no credentials");
        assert_eq!(
            err(&[b"Bearer   "]),
            "authorization scheme has no credentials"
        );
    }

    #[test]
    fn two_entries_are_rejected() {
        assert_eq!(
            err(&[b"Bearer a", b"Bearer b"]),
            "multiple authorization metadata entries"
        );
    }

    #[test]
    fn non_ascii_is_rejected_without_echo() {
        let e = err(&["Bearer caf\u{e9}".as_bytes()]);
        assert_eq!(e, "authorization metadata is not valid ASCII");
        let e = err(&[b"Bearer \xff\xfe"]);
        assert_eq!(e, "authorization metadata is not valid ASCII");
    }

    #[test]
    fn oversized_value_is_rejected() {
        let big = format!("Bearer {}", "a".repeat(DEFAULT_MAX_VALUE_LEN));
        assert_eq!(
            err(&[big.as_bytes()]),
            "authorization metadata exceeds 8192 bytes"
        );
        let h = headers(&[b"Bearer abcdefgh"]);
        let r = AuthRequest::new("/a.B/C", &h).with_max_value_len(8);
        assert!(r.authorization().is_err());
    }

    #[test]
    fn only_sp_and_htab_separate_or_trim() {
        // Found by fuzzing: Unicode whitespace made a scheme end in a space.
        let a = Authorization::parse("a\u{b} b").unwrap();
        assert_eq!((a.scheme(), a.credentials()), ("a\u{b}", "b"));
        let a = Authorization::parse("a\u{a0} b").unwrap();
        assert_eq!((a.scheme(), a.credentials()), ("a\u{a0}", "b"));
        assert_eq!(
            Authorization::parse("Bearer\u{a0}")
                .unwrap_err()
                .to_string(),
            "authorization scheme has no credentials"
        );
    }

    #[test]
    fn request_debug_shows_keys_not_values() {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Bearer sekrit-token"),
        );
        h.insert("x-api-key", HeaderValue::from_static("k-sekrit"));
        h.insert("x-trace", HeaderValue::from_static("plain-sekrit"));
        let shown = format!("{:?}", AuthRequest::new("/a.B/C", &h));
        assert!(!shown.contains("sekrit"), "{shown}");
        assert!(
            shown.contains("authorization") && shown.contains("x-api-key"),
            "{shown}"
        );
        assert!(shown.contains("/a.B/C"), "{shown}");
    }

    #[test]
    fn claimed_entries_read_as_absent() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        h.insert("x-api-key", HeaderValue::from_static("k"));
        let r = AuthRequest::new("/a.B/C", &h);
        let names = [AUTHORIZATION];
        let link = r.claim(&names);
        let r2 = r.claiming(&link);
        assert!(r2.authorization().unwrap().is_none());
        assert_eq!(
            r2.single_value(&HeaderName::from_static("x-api-key"))
                .unwrap(),
            Some("k")
        );
        let more = [HeaderName::from_static("x-api-key")];
        let link2 = r2.claim(&more);
        let r3 = r2.claiming(&link2);
        assert!(
            r3.authorization().unwrap().is_none(),
            "outer claims still hold"
        );
        assert!(
            r3.single_value(&HeaderName::from_static("x-api-key"))
                .unwrap()
                .is_none()
        );
        assert!(
            r.authorization().unwrap().is_some(),
            "the original is unchanged"
        );
    }

    #[test]
    fn debug_hides_credentials() {
        let a = Authorization::parse("Bearer sekrit").unwrap();
        assert!(!format!("{a:?}").contains("sekrit"));
    }
}
