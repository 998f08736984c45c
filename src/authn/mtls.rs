//! [`MtlsAuthenticator`]: the client certificate tonic's TLS server verified, as a
//! workload identity.

use std::fmt;

use serde_json::{Map, Value};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::{AuthRequest, AuthResult, Authenticated, Authenticator};
use crate::{AuthError, Principal};

/// Authenticates a call by the client certificate of its TLS connection (mutual TLS).
///
/// The TLS server verifies the chain against its client CA
/// (`ServerTlsConfig::client_ca_root`); this authenticator names the caller and applies
/// acceptance rules. The principal's subject is, in order:
/// - the SPIFFE ID: the certificate's `spiffe://` URI SAN (an X.509-SVID has exactly
///   one; a certificate with several is refused);
/// - else its first DNS SAN;
/// - else its subject, as RFC 4514 and grpc-go write it (`CN=billing,O=Example,C=US`:
///   the last RDN first, special characters escaped).
///
/// The scheme is `mtls`; the claims hold `uri_sans`, `dns_sans`, `subject` and the
/// leaf's `x5t#S256` thumbprint. A call without a client certificate (no TLS, or TLS
/// without one) is absent (`Ok(None)`), so `mtls.or(jwt)` falls through to the token
/// and `mtls.and(jwt)` needs both.
///
/// Rules: with none, every certificate the TLS server verified is accepted. With any,
/// the identity must match one: [`trust_domain`](Self::trust_domain) (a SPIFFE ID in
/// that domain), [`id`](Self::id) (exactly this identity), [`prefix`](Self::prefix).
/// Anything else is `UNAUTHENTICATED` "client certificate identity not accepted".
///
/// ```
/// use grpc_auth::authn::MtlsAuthenticator;
/// let mtls = MtlsAuthenticator::new()
///     .trust_domain("prod.example.org")
///     .id("spiffe://ops.example.org/ns/admin/sa/console");
/// # let _ = mtls;
/// ```
#[derive(Clone, Default)]
pub struct MtlsAuthenticator {
    trust_domains: Vec<String>,
    ids: Vec<String>,
    prefixes: Vec<String>,
}

/// The names of a certificate, as A43 orders them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct CertNames {
    pub(crate) uris: Vec<String>,
    pub(crate) dns: Vec<String>,
    pub(crate) subject: String,
}

/// Reads a certificate's URI SANs, DNS SANs and subject.
pub(crate) fn cert_names(der: &[u8]) -> Result<CertNames, AuthError> {
    let invalid = || AuthError::unauthenticated("invalid client certificate");
    let (_, cert) =
        x509_parser::certificate::X509Certificate::from_der(der).map_err(|_| invalid())?;
    let mut names = CertNames {
        subject: rfc4514(cert.subject()),
        ..CertNames::default()
    };
    if let Some(san) = cert.subject_alternative_name().map_err(|_| invalid())? {
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(uri) => names.uris.push((*uri).to_owned()),
                GeneralName::DNSName(dns) => names.dns.push((*dns).to_owned()),
                _ => {}
            }
        }
    }
    Ok(names)
}

/// A distinguished name as RFC 4514 (and grpc-go) writes it: the last RDN first,
/// `,` between RDNs, `+` inside one, the usual short names (`CN`, `O`, `OU`, `L`, `ST`,
/// `C`, `STREET`, `DC`, `UID`, `SERIALNUMBER`), else the dotted OID; special characters
/// escaped, so no value can spell another name's structure. A value that is not a
/// text string (`UniversalString`, `BMPString`, ...) is `#` and the hex of its tag and
/// content, which no text value can equal (a text value's leading `#` is escaped).
pub(crate) fn rfc4514(name: &x509_parser::x509::X509Name<'_>) -> String {
    let mut rdns: Vec<String> = Vec::new();
    for rdn in name.iter() {
        let mut parts: Vec<String> = Vec::new();
        for atv in rdn.iter() {
            let key = match atv.attr_type().to_id_string().as_str() {
                "2.5.4.3" => "CN".to_owned(),
                "2.5.4.5" => "SERIALNUMBER".to_owned(),
                "2.5.4.6" => "C".to_owned(),
                "2.5.4.7" => "L".to_owned(),
                "2.5.4.8" => "ST".to_owned(),
                "2.5.4.9" => "STREET".to_owned(),
                "2.5.4.10" => "O".to_owned(),
                "2.5.4.11" => "OU".to_owned(),
                "0.9.2342.19200300.100.1.25" => "DC".to_owned(),
                "0.9.2342.19200300.100.1.1" => "UID".to_owned(),
                other => other.to_owned(),
            };
            let value = match atv.as_str() {
                Ok(text) => escape_value(text),
                Err(_) => {
                    let mut hex = format!("#{:02x}", atv.attr_value().tag().0);
                    for b in atv.as_slice() {
                        hex.push_str(&format!("{b:02x}"));
                    }
                    hex
                }
            };
            parts.push(format!("{key}={value}"));
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    rdns.join(",")
}

/// RFC 4514 section 2.4 escaping of an attribute value.
fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

impl MtlsAuthenticator {
    /// Accepts every certificate the TLS server verified, until rules are added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts SPIFFE IDs in `domain` (`spiffe://<domain>/...`).
    pub fn trust_domain(mut self, domain: impl Into<String>) -> Self {
        self.trust_domains.push(domain.into());
        self
    }

    /// Accepts exactly this identity (a SPIFFE ID, a DNS name or a subject).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.ids.push(id.into());
        self
    }

    /// Accepts identities starting with `prefix` (`spiffe://example.org/ns/prod/`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefixes.push(prefix.into());
        self
    }

    fn accepts(&self, identity: &str) -> bool {
        if self.trust_domains.is_empty() && self.ids.is_empty() && self.prefixes.is_empty() {
            return true;
        }
        let domain = identity
            .strip_prefix("spiffe://")
            .map(|rest| rest.split('/').next().unwrap_or_default());
        domain.is_some_and(|d| self.trust_domains.iter().any(|t| t == d))
            || self.ids.iter().any(|i| i == identity)
            || self
                .prefixes
                .iter()
                .any(|p| identity.starts_with(p.as_str()))
    }
}

impl Authenticator for MtlsAuthenticator {
    async fn authenticate(&self, req: &AuthRequest<'_>) -> AuthResult {
        let Some(certs) = req.peer_certificates() else {
            return Ok(None);
        };
        let leaf = certs
            .leaf()
            .ok_or_else(|| AuthError::unauthenticated("invalid client certificate"))?;
        let names = cert_names(leaf)?;
        let spiffe: Vec<&String> = names
            .uris
            .iter()
            .filter(|u| u.starts_with("spiffe://"))
            .collect();
        let identity = match (spiffe.as_slice(), names.dns.first()) {
            ([one], _) => (*one).clone(),
            ([_, _, ..], _) => {
                return Err(AuthError::unauthenticated(
                    "client certificate has several SPIFFE IDs",
                ));
            }
            ([], Some(dns)) => dns.clone(),
            ([], None) => names.subject.clone(),
        };
        if identity.is_empty() || !self.accepts(&identity) {
            return Err(AuthError::unauthenticated(
                "client certificate identity not accepted",
            ));
        }
        let mut claims = Map::new();
        claims.insert("uri_sans".into(), Value::from(names.uris));
        claims.insert("dns_sans".into(), Value::from(names.dns));
        claims.insert("subject".into(), Value::from(names.subject));
        if let Some(x5t) = certs.leaf_thumbprint() {
            claims.insert("x5t#S256".into(), Value::from(x5t));
        }
        Ok(Some(Authenticated::by_connection(
            Principal::new(identity, "mtls").with_claims(claims),
        )))
    }
}

impl fmt::Debug for MtlsAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MtlsAuthenticator")
            .field("trust_domains", &self.trust_domains)
            .field("ids", &self.ids)
            .field("prefixes", &self.prefixes)
            .finish()
    }
}

/// A token bound to a certificate (RFC 8705: `cnf` with `x5t#S256`) is accepted only on
/// a connection whose client certificate has that SHA-256 thumbprint: a stolen token
/// cannot be replayed from another workload. A `cnf` with no method this crate can
/// check (DPoP's `jkt`) is refused: the binding could not be checked.
pub(crate) fn check_binding(principal: &Principal, req: &AuthRequest<'_>) -> Result<(), AuthError> {
    let Some(cnf) = principal.claims().get("cnf") else {
        return Ok(());
    };
    let Some(expected) = cnf.get("x5t#S256").and_then(Value::as_str) else {
        return Err(AuthError::unauthenticated(
            "token bound by an unsupported confirmation method",
        ));
    };
    let actual = req
        .peer_certificates()
        .and_then(|certs| certs.leaf_thumbprint());
    match actual {
        Some(actual)
            if bool::from(subtle::ConstantTimeEq::ct_eq(
                actual.as_bytes(),
                expected.as_bytes(),
            )) =>
        {
            Ok(())
        }
        Some(_) => Err(AuthError::unauthenticated(
            "certificate-bound token presented with another certificate",
        )),
        None => Err(AuthError::unauthenticated(
            "certificate-bound token presented without a client certificate",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_accept_by_trust_domain_exact_id_or_prefix() {
        let any = MtlsAuthenticator::new();
        assert!(any.accepts("CN=whoever"));
        let m = MtlsAuthenticator::new()
            .trust_domain("prod.example.org")
            .id("api.example.com")
            .prefix("spiffe://ops.example.org/ns/admin/");
        assert!(m.accepts("spiffe://prod.example.org/ns/billing/sa/api"));
        assert!(!m.accepts("spiffe://prod.example.org.evil/ns/x"));
        assert!(!m.accepts("spiffe://evil.org/prod.example.org"));
        assert!(m.accepts("api.example.com"));
        assert!(!m.accepts("api.example.com.evil"));
        assert!(m.accepts("spiffe://ops.example.org/ns/admin/sa/console"));
        assert!(!m.accepts("spiffe://ops.example.org/ns/other"));
    }

    #[test]
    fn garbage_is_an_invalid_certificate() {
        assert_eq!(
            cert_names(b"not a certificate").unwrap_err(),
            AuthError::unauthenticated("invalid client certificate")
        );
    }
}
