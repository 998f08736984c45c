//! gRPC's authorization policy (gRFC A43): the JSON format grpc-go, grpc-java and
//! C-core accept, parsed and evaluated.
//!
//! A policy is parsed and validated, and decides a call from its method path, its
//! metadata and its peer's names ([`Peer::of`]: an mTLS caller by its certificate's
//! names, any other by `{scheme}:{subject}`). The layer applies it with
//! [`AuthLayer::authorization_policy`](crate::AuthLayer::authorization_policy);
//! [`PolicyWatcher`] reloads a policy file as it changes; decisions are audited
//! (gRFC A59) through [`AuditLogger`]s.
//!
//! ```
//! use grpc_auth::authz::{AuthorizationPolicy, Peer};
//! let policy = AuthorizationPolicy::from_json(r#"{
//!   "name": "greeter",
//!   "deny_rules": [{"name": "no_admin", "request": {"paths": ["/helloworld.Greeter/SayHelloAdmin"]}}],
//!   "allow_rules": [{"name": "workloads", "source": {"principals": ["spiffe://example.org/*"]}}]
//! }"#)?;
//! let headers = http::HeaderMap::new();
//! let peer = Peer::tls(["spiffe://example.org/billing"]);
//! let d = policy.decide("/helloworld.Greeter/SayHello", &headers, &peer);
//! assert!(d.allowed);
//! assert_eq!(d.matched_rule.as_deref(), Some("workloads"));
//! let d = policy.decide("/helloworld.Greeter/SayHelloAdmin", &headers, &peer);
//! assert!(!d.allowed);
//! # Ok::<(), grpc_auth::authz::PolicyError>(())
//! ```
//!
//! Semantics (A43): a call matching a deny rule is denied; otherwise one matching an
//! allow rule is allowed; otherwise it is denied. In a rule, `source` and `request` are
//! ANDed and an absent one matches everything; `principals` and `paths` are ORed;
//! `headers` entries are ANDed and the `values` of one entry ORed. Patterns: `"*"` is
//! any non-empty value, `"abc*"` a prefix, `"*abc"` a suffix, anything else exact.
//! Several values of one header are joined with `,` before matching.

mod audit;
mod watch;

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use http::HeaderMap;
use serde::Deserialize;

pub use audit::{
    AuditEvent, AuditLogger, AuditLoggerFactory, AuditLoggerRegistry, JsonLinesLogger,
};
pub use watch::{PolicyFileError, PolicyWatcher, PolicyWatcherBuilder};

/// Why a policy is invalid: where in the document, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid authorization policy: {0}")]
pub struct PolicyError(String);

/// A string pattern of the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// `"*"`: any non-empty value.
    Any,
    Prefix(String),
    Suffix(String),
    Exact(String),
}

impl Pattern {
    fn parse(s: &str) -> Self {
        if s == "*" {
            Self::Any
        } else if let Some(prefix) = s.strip_suffix('*') {
            Self::Prefix(prefix.to_owned())
        } else if let Some(suffix) = s.strip_prefix('*') {
            Self::Suffix(suffix.to_owned())
        } else {
            Self::Exact(s.to_owned())
        }
    }

    fn matches(&self, value: &str) -> bool {
        self.matches_bytes(value.as_bytes())
    }

    /// On bytes: a header value need not be text (a byte of 0x80 or more, a tab), and
    /// such a value must still meet the rules (a deny rule is not evaded by it).
    fn matches_bytes(&self, value: &[u8]) -> bool {
        match self {
            Self::Any => !value.is_empty(),
            Self::Prefix(p) => value.starts_with(p.as_bytes()),
            Self::Suffix(s) => value.ends_with(s.as_bytes()),
            Self::Exact(e) => value == e.as_bytes(),
        }
    }
}

/// Who the peer is, as the policy's `source.principals` see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// No TLS and no authenticated principal: matches no principal pattern (a rule
    /// without `source` still matches).
    Unauthenticated,
    /// An authenticated peer by its names, any of which may match: a TLS peer's
    /// certificate names of the first kind it has (its URI SANs, else its DNS SANs,
    /// else its subject), empty when it sent no client certificate (then only `""`
    /// matches); or a grpc-auth principal ([`Peer::of`]).
    Authenticated(Vec<String>),
}

impl Peer {
    /// The peer a grpc-auth [`Principal`](crate::Principal) stands for, named
    /// `{scheme}:{subject}` (`jwt:ada`, `api-key:billing`, `basic:ada`, `hmac:svc-a`):
    /// the scheme is part of the name, so a token whose subject looks like a workload's
    /// SPIFFE ID does not match that workload's rules. An `mtls` principal is its
    /// identity (SPIFFE ID, DNS name or subject). The layer names a call's peer from
    /// the connection's certificate and the principal together.
    pub fn of(principal: &crate::Principal) -> Self {
        if principal.scheme() == "mtls" {
            return Self::Authenticated(vec![principal.subject().to_owned()]);
        }
        Self::Authenticated(vec![format!(
            "{}:{}",
            principal.scheme(),
            principal.subject()
        )])
    }

    /// The peer of a call as the layer sees it: the client certificate tonic's TLS
    /// server verified, named as A43 does ([`certificate`](Self::certificate)), or `""`
    /// for TLS without one; and the authenticated caller (`{scheme}:{subject}`; an
    /// `mtls` caller is its certificate). Read from the connection, not from the
    /// principal's claims, so no token can claim a certificate's names; any name may
    /// match, so a deny rule on either identity applies.
    pub(crate) fn for_call(
        principal: Option<&crate::Principal>,
        extensions: &http::Extensions,
    ) -> Self {
        let tls = crate::authn::request::peer_certificates(extensions);
        let mut names = match &tls {
            None => Vec::new(),
            Some(certs) => match certs.chain() {
                [] => vec![String::new()],
                certs => match certs
                    .first()
                    .map(|leaf| crate::authn::mtls::cert_names(leaf.as_ref()))
                {
                    Some(Ok(n)) => match Self::certificate(n.uris, n.dns, &n.subject) {
                        Self::Authenticated(names) => names,
                        Self::Unauthenticated => Vec::new(),
                    },
                    // Unreadable: no certificate name can match.
                    _ => Vec::new(),
                },
            },
        };
        if let Some(p) = principal.filter(|p| p.scheme() != "mtls") {
            names.push(format!("{}:{}", p.scheme(), p.subject()));
        }
        if tls.is_none() && principal.is_none() {
            return Self::Unauthenticated;
        }
        Self::Authenticated(names)
    }

    /// A TLS peer by its client certificate's names, as A43 takes them: its URI SANs if
    /// it has any, else its DNS SANs, else its subject (an empty subject: no name). Only
    /// that first kind counts (grpc-go, grpc-java): a certificate with URI SANs is never
    /// matched by its DNS SANs or subject.
    pub fn certificate(uris: Vec<String>, dns: Vec<String>, subject: &str) -> Self {
        let names = if !uris.is_empty() {
            uris
        } else if !dns.is_empty() {
            dns
        } else if subject.is_empty() {
            Vec::new()
        } else {
            vec![subject.to_owned()]
        };
        Self::Authenticated(names)
    }

    /// A TLS peer with these names, any of which may match (the names of one kind: see
    /// [`certificate`](Self::certificate)).
    pub fn tls<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::Authenticated(names.into_iter().map(Into::into).collect())
    }

    fn matches(&self, pattern: &Pattern) -> bool {
        match self {
            Self::Unauthenticated => false,
            Self::Authenticated(names) if names.is_empty() => {
                *pattern == Pattern::Exact(String::new())
            }
            Self::Authenticated(names) => names.iter().any(|n| pattern.matches(n)),
        }
    }
}

#[derive(Debug, Clone)]
struct HeaderRule {
    key: String,
    values: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    principals: Vec<Pattern>,
    paths: Vec<Pattern>,
    headers: Vec<HeaderRule>,
}

/// When decisions are audited (A59 `audit_condition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditCondition {
    /// Never (the default).
    #[default]
    None,
    /// Denied calls.
    OnDeny,
    /// Allowed calls.
    OnAllow,
    /// Every call.
    OnDenyAndAllow,
}

impl AuditCondition {
    /// Whether a decision `allowed` is audited.
    pub fn audits(self, allowed: bool) -> bool {
        match self {
            Self::None => false,
            Self::OnDeny => !allowed,
            Self::OnAllow => allowed,
            Self::OnDenyAndAllow => true,
        }
    }
}

/// An audit logger named by the policy (A59 `audit_loggers`).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditLoggerConfig {
    /// The logger's name (`stdout_logger` is built in).
    pub name: String,
    /// Its configuration object.
    pub config: serde_json::Map<String, serde_json::Value>,
    /// Whether an unknown logger of this name is skipped rather than an error.
    pub is_optional: bool,
}

/// A parsed, valid authorization policy.
#[derive(Debug, Clone)]
pub struct AuthorizationPolicy {
    name: String,
    deny: Vec<Rule>,
    allow: Vec<Rule>,
    audit_condition: AuditCondition,
    audit_loggers: Vec<AuditLoggerConfig>,
    loggers: Vec<Arc<dyn AuditLogger>>,
}

/// What the policy decided for a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the call may go on.
    pub allowed: bool,
    /// The rule that decided (`None` when no rule matched: denied).
    pub matched_rule: Option<String>,
}

// The document, as serde reads it: unknown fields anywhere are an error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    name: Option<String>,
    #[serde(default)]
    deny_rules: Vec<DocRule>,
    allow_rules: Option<Vec<DocRule>>,
    audit_logging_options: Option<DocAudit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocRule {
    name: Option<String>,
    source: Option<DocSource>,
    request: Option<DocRequest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocSource {
    #[serde(default)]
    principals: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocRequest {
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    headers: Vec<DocHeader>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocHeader {
    key: Option<String>,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocAudit {
    audit_condition: Option<String>,
    #[serde(default)]
    audit_loggers: Vec<DocLogger>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocLogger {
    name: Option<String>,
    config: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    is_optional: bool,
}

/// Header keys a rule may not name (A43): hop-by-hop and `host`; also any pseudo-header
/// (`:...`) and `grpc-...`.
const UNSUPPORTED_HEADERS: [&str; 9] = [
    "host",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn err(msg: impl Into<String>) -> PolicyError {
    PolicyError(msg.into())
}

fn rules(doc: Vec<DocRule>, field: &str) -> Result<Vec<Rule>, PolicyError> {
    let mut out = Vec::with_capacity(doc.len());
    for (i, rule) in doc.into_iter().enumerate() {
        let name = rule
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| err(format!(r#""{field}" {i}: "name" is not present"#)))?;
        let principals = rule
            .source
            .map(|s| s.principals.iter().map(|p| Pattern::parse(p)).collect())
            .unwrap_or_default();
        let (paths, headers) = match rule.request {
            None => (Vec::new(), Vec::new()),
            Some(req) => {
                let paths = req.paths.iter().map(|p| Pattern::parse(p)).collect();
                let mut headers = Vec::with_capacity(req.headers.len());
                for (j, h) in req.headers.into_iter().enumerate() {
                    let key = h.key.filter(|k| !k.is_empty()).ok_or_else(|| {
                        err(format!(
                            r#""{field}" {i}: "headers" {j}: "key" is not present"#
                        ))
                    })?;
                    let key = key.to_ascii_lowercase();
                    if key.starts_with(':')
                        || key.starts_with("grpc-")
                        || UNSUPPORTED_HEADERS.contains(&key.as_str())
                    {
                        return Err(err(format!(
                            r#""{field}" {i}: "headers" {j}: unsupported "key" {key}"#
                        )));
                    }
                    if h.values.is_empty() {
                        return Err(err(format!(
                            r#""{field}" {i}: "headers" {j}: "values" is not present"#
                        )));
                    }
                    headers.push(HeaderRule {
                        key,
                        values: h.values.iter().map(|v| Pattern::parse(v)).collect(),
                    });
                }
                (paths, headers)
            }
        };
        out.push(Rule {
            name,
            principals,
            paths,
            headers,
        });
    }
    Ok(out)
}

impl AuthorizationPolicy {
    /// Parses and validates a policy (A43, with A59's `audit_logging_options`; its
    /// loggers from the built-in ones: `stdout_logger`).
    pub fn from_json(json: &str) -> Result<Self, PolicyError> {
        Self::from_json_with(json, &AuditLoggerRegistry::default())
    }

    /// [`from_json`](Self::from_json), the audit loggers the policy names taken from
    /// `registry` (an unknown one is an error unless `is_optional`).
    pub fn from_json_with(json: &str, registry: &AuditLoggerRegistry) -> Result<Self, PolicyError> {
        let doc: Doc = serde_json::from_str(json)
            .map_err(|e| err(format!("failed to unmarshal policy: {e}")))?;
        let name = doc
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| err(r#""name" is not present"#))?;
        let allow = doc
            .allow_rules
            .filter(|r| !r.is_empty())
            .ok_or_else(|| err(r#""allow_rules" is not present"#))?;
        let deny = rules(doc.deny_rules, "deny_rules")?;
        let allow = rules(allow, "allow_rules")?;
        let (audit_condition, audit_loggers) = match doc.audit_logging_options {
            None => (AuditCondition::None, Vec::new()),
            Some(a) => {
                let condition = match a.audit_condition.as_deref() {
                    None | Some("NONE") => AuditCondition::None,
                    Some("ON_DENY") => AuditCondition::OnDeny,
                    Some("ON_ALLOW") => AuditCondition::OnAllow,
                    Some("ON_DENY_AND_ALLOW") => AuditCondition::OnDenyAndAllow,
                    Some(other) => {
                        return Err(err(format!("failed to parse AuditCondition {other}")));
                    }
                };
                let mut loggers = Vec::with_capacity(a.audit_loggers.len());
                for (i, l) in a.audit_loggers.into_iter().enumerate() {
                    let name = l.name.filter(|n| !n.is_empty()).ok_or_else(|| {
                        err(format!(r#""audit_loggers" {i}: "name" is not present"#))
                    })?;
                    let config = l.config.ok_or_else(|| {
                        err(format!(
                            r#""audit_loggers" {i}: AuditLogger Config field cannot be nil"#
                        ))
                    })?;
                    loggers.push(AuditLoggerConfig {
                        name,
                        config,
                        is_optional: l.is_optional,
                    });
                }
                (condition, loggers)
            }
        };
        let loggers = registry.build(&audit_loggers)?;
        Ok(Self {
            name,
            deny,
            allow,
            audit_condition,
            audit_loggers,
            loggers,
        })
    }

    /// [`decide`](Self::decide), and the decision audited when the policy's
    /// `audit_condition` says so: what the layer calls.
    pub fn check(&self, path: &str, headers: &HeaderMap, peer: &Peer) -> Decision {
        let decision = self.decide(path, headers, peer);
        if !self.loggers.is_empty() && self.audit_condition.audits(decision.allowed) {
            let event = AuditEvent {
                rpc_method: path.to_owned(),
                principal: match peer {
                    Peer::Authenticated(names) => names
                        .iter()
                        .find(|n| !n.is_empty())
                        .cloned()
                        .unwrap_or_default(),
                    Peer::Unauthenticated => String::new(),
                },
                policy_name: self.name.clone(),
                matched_rule: decision.matched_rule.clone().unwrap_or_default(),
                authorized: decision.allowed,
            };
            for logger in &self.loggers {
                logger.log(&event);
            }
        }
        decision
    }

    /// The policy's `name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// When decisions are audited.
    pub fn audit_condition(&self) -> AuditCondition {
        self.audit_condition
    }

    /// The audit loggers the policy names.
    pub fn audit_loggers(&self) -> &[AuditLoggerConfig] {
        &self.audit_loggers
    }

    /// Decides a call to `path` (`/package.Service/Method`) with `headers` from `peer`.
    pub fn decide(&self, path: &str, headers: &HeaderMap, peer: &Peer) -> Decision {
        if let Some(rule) = self.deny.iter().find(|r| r.matches(path, headers, peer)) {
            return Decision {
                allowed: false,
                matched_rule: Some(rule.name.clone()),
            };
        }
        match self.allow.iter().find(|r| r.matches(path, headers, peer)) {
            Some(rule) => Decision {
                allowed: true,
                matched_rule: Some(rule.name.clone()),
            },
            None => Decision {
                allowed: false,
                matched_rule: None,
            },
        }
    }
}

impl Rule {
    fn matches(&self, path: &str, headers: &HeaderMap, peer: &Peer) -> bool {
        (self.principals.is_empty() || self.principals.iter().any(|p| peer.matches(p)))
            && (self.paths.is_empty() || self.paths.iter().any(|p| p.matches(path)))
            && self.headers.iter().all(|h| h.matches(headers))
    }
}

impl HeaderRule {
    fn matches(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(self.key.as_str()).iter().peekable();
        if values.peek().is_none() {
            return false;
        }
        // Several values are joined with ',' (grpc-go), byte for byte.
        let mut joined: Vec<u8> = Vec::new();
        for (i, v) in values.enumerate() {
            if i > 0 {
                joined.push(b',');
            }
            joined.extend_from_slice(v.as_bytes());
        }
        self.values.iter().any(|p| p.matches_bytes(&joined))
    }
}

/// A policy that can be replaced while serving (a reloaded file): what the layer holds.
/// Clones share it.
#[derive(Clone, Debug)]
pub struct SharedPolicy(Arc<RwLock<Arc<AuthorizationPolicy>>>);

impl SharedPolicy {
    /// Serves `policy` until [`replace`](Self::replace)d.
    pub fn new(policy: AuthorizationPolicy) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(policy))))
    }

    /// The policy in force.
    pub fn current(&self) -> Arc<AuthorizationPolicy> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts `policy` in force for the calls that start from now on.
    pub fn replace(&self, policy: AuthorizationPolicy) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(policy);
    }
}

impl From<AuthorizationPolicy> for SharedPolicy {
    fn from(policy: AuthorizationPolicy) -> Self {
        Self::new(policy)
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.matched_rule, self.allowed) {
            (Some(rule), true) => write!(f, "allowed by {rule}"),
            (Some(rule), false) => write!(f, "denied by {rule}"),
            (None, _) => f.write_str("denied: no rule matched"),
        }
    }
}

#[cfg(test)]
mod tests;
