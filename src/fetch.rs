//! The HTTP client every remote fetch uses (JWKS, OpenID Connect discovery, token
//! introspection and token endpoints): reqwest over rustls with this crate's crypto
//! provider and the system roots, timeouts, a response-size limit, redirects bounded and
//! never from https to http, plain http refused except to loopback, and URLs shown with
//! any user name and password redacted.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::HeaderMap;
use reqwest::Url;

const MAX_REDIRECTS: usize = 5;

/// What bounds a fetch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) connect_timeout: Duration,
    pub(crate) timeout: Duration,
    pub(crate) max_bytes: usize,
}

/// Why a fetch or its set-up failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FetchError {
    /// A URL that does not parse or may not be used, or a client that cannot be built.
    #[error("{0}")]
    Config(String),
    /// The server could not be reached, or answered with an error, too slowly or too much.
    #[error("{0}")]
    Request(String),
}

/// A URL as logs and errors show it: its userinfo (`https://user:pw@host/..`, which
/// reqwest sends as Basic auth) becomes `redacted@`.
pub(crate) struct Shown<'a>(pub(crate) &'a Url);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.password().is_none() && self.0.username().is_empty() {
            return write!(f, "{}", self.0);
        }
        // The whole userinfo: a user name may be the secret (an API key sent as Basic
        // `KEY:`), as in `shown_str`.
        let mut url = self.0.clone();
        let _ = url.set_password(None);
        let _ = url.set_username("redacted");
        write!(f, "{url}")
    }
}

/// A key or discovery URL: https; http only to a loopback host or when `allow_http`.
pub(crate) fn http_url(url: &str, allow_http: bool) -> Result<Url, FetchError> {
    let parsed = Url::parse(url)
        .map_err(|e| FetchError::Config(format!("invalid URL {:?}: {e}", shown_str(url))))?;
    let shown = Shown(&parsed);
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(FetchError::Config(format!(
            "invalid URL {shown}: not an http(s) URL"
        )));
    }
    if parsed.scheme() == "http" && !allow_http && !is_loopback(&parsed) {
        return Err(FetchError::Config(format!(
            "invalid URL {shown}: plain http is refused (keys could be replaced in transit); \
             use https, or allow_http() to opt in"
        )));
    }
    Ok(parsed)
}

/// A URL text that did not parse, as errors show it: everything up to its last `@` is
/// dropped, so a password in it is never shown.
pub(crate) fn shown_str(url: &str) -> String {
    match url.rsplit_once('@') {
        Some((_, rest)) => format!("[redacted]@{rest}"),
        None => url.to_owned(),
    }
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// GETs `url` with `client`: a 2xx body within `limits.max_bytes`, and the response's
/// `Cache-Control: max-age`. Errors name the URL (userinfo redacted), never the body.
pub(crate) async fn get(
    client: &reqwest::Client,
    url: &Url,
    limits: &Limits,
) -> Result<(Vec<u8>, Option<Duration>), FetchError> {
    let fail = |what: String| FetchError::Request(format!("GET {}: {what}", Shown(url)));
    let response = client
        .get(url.clone())
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| fail(describe(&e.without_url())))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!("HTTP {status}")));
    }
    let max_age = cache_max_age(response.headers());
    let body = body(response, limits, fail).await?;
    Ok((body, max_age))
}

/// The body of `response`, at most `limits.max_bytes` (checked against the announced
/// length first, then as chunks arrive); `fail` makes the error naming the request.
async fn body(
    mut response: reqwest::Response,
    limits: &Limits,
    fail: impl Fn(String) -> FetchError,
) -> Result<Vec<u8>, FetchError> {
    let limit = limits.max_bytes;
    let too_large = || fail(format!("response larger than {limit} bytes"));
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| fail(describe(&e.without_url())))?
    {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// POSTs `form` (`application/x-www-form-urlencoded`) to `url` with `client`, with the
/// `authorization` value when given: the status and a body within `limits.max_bytes`, whatever
/// the status (an OAuth 2.0 error is a 400 with a JSON body). Errors name the URL
/// (userinfo redacted), never the form or the body.
pub(crate) async fn post_form(
    client: &reqwest::Client,
    url: &Url,
    limits: &Limits,
    form: &[(&str, &str)],
    authorization: Option<&str>,
) -> Result<(u16, Vec<u8>), FetchError> {
    let fail = |what: String| FetchError::Request(format!("POST {}: {what}", Shown(url)));
    let mut request = client
        .post(url.clone())
        .header(http::header::ACCEPT, "application/json")
        .form(form);
    if let Some(value) = authorization {
        let mut value = http::HeaderValue::from_str(value)
            .map_err(|_| fail("client credentials are not valid in a header".into()))?;
        value.set_sensitive(true);
        request = request.header(http::header::AUTHORIZATION, value);
    }
    let response = request
        .send()
        .await
        .map_err(|e| fail(describe(&e.without_url())))?;
    let status = response.status().as_u16();
    Ok((status, body(response, limits, fail).await?))
}

/// Why an issuer's metadata named no usable endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DiscoveryError {
    /// The document is another issuer's.
    IssuerMismatch { expected: String, found: String },
    /// Not a metadata document, or the field is missing or not a usable URL.
    Invalid(String),
}

/// The URL in `field` (`jwks_uri`, `token_endpoint`, `introspection_endpoint`) of the
/// OpenID Connect / RFC 8414 metadata `body` fetched from `config`, whose `issuer`
/// must be `issuer`. An https document may not point to an http endpoint.
pub(crate) fn discovered_url(
    body: &[u8],
    issuer: &str,
    config: &Url,
    field: &str,
    allow_http: bool,
) -> Result<Url, DiscoveryError> {
    let invalid = |what: String| DiscoveryError::Invalid(format!("{}: {what}", Shown(config)));
    let doc: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("not an OpenID Connect discovery document: {e}")))?;
    let found = doc.get("issuer").and_then(|v| v.as_str());
    if found != Some(issuer) {
        return Err(DiscoveryError::IssuerMismatch {
            expected: issuer.to_owned(),
            found: found.unwrap_or_default().to_owned(),
        });
    }
    let Some(uri) = doc.get(field).and_then(|v| v.as_str()) else {
        return Err(invalid(format!("no {field}")));
    };
    let url = http_url(uri, allow_http).map_err(|e| invalid(format!("{field}: {e}")))?;
    if config.scheme() == "https" && url.scheme() != "https" {
        return Err(invalid(format!("{field} {} is not https", Shown(&url))));
    }
    Ok(url)
}

/// The issuer's OpenID Connect discovery document URL
/// (`{issuer}/.well-known/openid-configuration`).
pub(crate) fn discovery_url(issuer: &str, allow_http: bool) -> Result<Url, FetchError> {
    http_url(
        &format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ),
        allow_http,
    )
}

/// The HTTP client: rustls with this crate's crypto provider (aws-lc-rs, or ring
/// under `rust-crypto`), the system's root certificates plus `extra_roots`.
pub(crate) fn client(
    limits: &Limits,
    extra_roots: &[Vec<u8>],
) -> Result<reqwest::Client, FetchError> {
    client_with(limits, extra_roots, true)
}

/// [`client`] that follows no redirect: for POSTs that carry secrets (a client secret,
/// a subject token in the form), which a 307/308 would send again to wherever it points.
pub(crate) fn client_no_redirects(
    limits: &Limits,
    extra_roots: &[Vec<u8>],
) -> Result<reqwest::Client, FetchError> {
    client_with(limits, extra_roots, false)
}

fn client_with(
    limits: &Limits,
    extra_roots: &[Vec<u8>],
    follow_redirects: bool,
) -> Result<reqwest::Client, FetchError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let config_err = FetchError::Config;
    let mut roots = rustls::RootCertStore::empty();
    roots.roots.extend(native_roots().roots.iter().cloned());
    for pem in extra_roots {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| config_err(format!("root certificate PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| config_err(format!("root certificate: {e}")))?;
        }
    }
    #[cfg(feature = "aws-lc-rs")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    let provider = rustls::crypto::ring::default_provider();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| config_err(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let redirects = if !follow_redirects {
        reqwest::redirect::Policy::none()
    } else {
        reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if attempt.url().scheme() != "https"
                && attempt.previous().iter().any(|u| u.scheme() == "https")
            {
                attempt.error("redirect from https to http")
            } else {
                attempt.follow()
            }
        })
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(limits.connect_timeout)
        .timeout(limits.timeout)
        .redirect(redirects)
        .user_agent(concat!("grpc-auth/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| config_err(format!("HTTP client: {}", describe(&e))))
}

/// The system's root certificates, loaded once per process.
fn native_roots() -> &'static rustls::RootCertStore {
    static ROOTS: OnceLock<rustls::RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!(error = %e, "grpc-auth: reading system root certificates");
        }
        let mut roots = rustls::RootCertStore::empty();
        let (_, ignored) = roots.add_parsable_certificates(found.certs);
        if roots.is_empty() {
            tracing::warn!(
                ignored,
                "grpc-auth: no system root certificates; https key URLs need root_certificates_pem"
            );
        }
        roots
    })
}

/// An error and its sources, one line.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s = s.to_string();
        if !out.ends_with(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        source = source.and_then(|e| e.source());
    }
    out
}

/// The smallest `max-age` of the `Cache-Control` headers; `no-cache` and `no-store`
/// count as 0.
pub(crate) fn cache_max_age(headers: &HeaderMap) -> Option<Duration> {
    let mut max_age: Option<Duration> = None;
    for value in headers.get_all(http::header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let (name, arg) = match directive.split_once('=') {
                Some((name, arg)) => (name.trim(), Some(arg.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            let age =
                if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                    Some(Duration::ZERO)
                } else if name.eq_ignore_ascii_case("max-age") {
                    arg.and_then(|a| a.parse::<u64>().ok())
                        .map(Duration::from_secs)
                } else {
                    None
                };
            if let Some(age) = age {
                max_age = Some(max_age.map_or(age, |m| m.min(age)));
            }
        }
    }
    max_age
}
