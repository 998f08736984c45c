//! [`Policy`]: which methods are public, which need authentication, and which need
//! scopes or roles.
//!
//! ```
//! use grpc_auth::Policy;
//! let policy = Policy::new()                                 // unmatched: authenticated
//!     .public("/grpc.health.v1.Health/*")                    // a whole service
//!     .public("/grpc.reflection.v1.ServerReflection/*")
//!     .require_scope("/helloworld.Greeter/SayHelloAdmin", "greeter.admin")
//!     .deny("/internal.Debug/*");
//! assert!(policy.rule_for("/grpc.health.v1.Health/Check").is_public());
//! ```
//!
//! Rules are looked up by exact method, then by service, then the default: the most
//! specific rule wins, and a method nothing matches needs an authenticated caller.
//!
//! A pattern is a method (`/package.Service/Method`) or a whole service
//! (`/package.Service/*`); see [`Policy::is_pattern`]. Anything else (an empty pattern,
//! `*`, `/a.B/Say*`) could never mean what it says, so a policy given one denies every
//! method, and says so in an error event, rather than leave a rule unapplied.

use std::collections::HashMap;
use std::sync::Arc;

use crate::{AuthError, Principal};

/// What a method requires.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// Anyone; credentials are not read.
    Public,
    /// Any authenticated caller.
    Authenticated,
    /// An authenticated caller with all of `scopes` and, when `roles` is not empty,
    /// at least one of `roles`.
    Require {
        /// Scopes that must all be granted.
        scopes: Vec<String>,
        /// Roles of which one must be granted (none: no role needed).
        roles: Vec<String>,
    },
    /// No one.
    Deny,
}

impl Rule {
    /// Whether the method is public.
    pub fn is_public(&self) -> bool {
        matches!(self, Self::Public)
    }

    /// Checks an authenticated caller against the rule.
    pub fn check(&self, principal: &Principal) -> Result<(), AuthError> {
        match self {
            Self::Public | Self::Authenticated => Ok(()),
            Self::Deny => Err(AuthError::permission_denied("method is not allowed")),
            Self::Require { scopes, roles } => {
                if let Some(missing) = scopes.iter().find(|s| !principal.has_scope(s)) {
                    return Err(AuthError::permission_denied(format!(
                        "missing scope: {missing}"
                    )));
                }
                if !roles.is_empty() && !roles.iter().any(|r| principal.has_role(r)) {
                    return Err(AuthError::permission_denied(format!(
                        "missing role: one of {}",
                        roles.join(", ")
                    )));
                }
                Ok(())
            }
        }
    }

    fn add_requirement(&mut self, scope: Option<String>, role: Option<String>) {
        if !matches!(self, Self::Require { .. }) {
            *self = Self::Require {
                scopes: Vec::new(),
                roles: Vec::new(),
            };
        }
        if let Self::Require { scopes, roles } = self {
            scopes.extend(scope);
            roles.extend(role);
        }
    }
}

/// Per-method access rules. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Policy {
    methods: HashMap<String, Arc<Rule>>,
    services: HashMap<String, Arc<Rule>>,
    default: Arc<Rule>,
    /// Patterns given that are not patterns: then every method is denied.
    invalid: Vec<String>,
    deny_all: Arc<Rule>,
}

impl Default for Policy {
    fn default() -> Self {
        Self::new()
    }
}

/// A pattern: `/pkg.Service/Method` (exact), `/pkg.Service/*` or `/pkg.Service`
/// (every method of the service).
enum Pattern {
    Method(String),
    Service(String),
}

fn pattern(path: &str) -> Pattern {
    let p = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    if let Some(service) = p.strip_suffix("/*") {
        return Pattern::Service(service.to_owned());
    }
    if let Some(service) = p.strip_suffix('/') {
        return Pattern::Service(service.to_owned());
    }
    match p[1..].contains('/') {
        true => Pattern::Method(p),
        false => Pattern::Service(p),
    }
}

impl Policy {
    /// Every method needs an authenticated caller.
    pub fn new() -> Self {
        Self {
            methods: HashMap::new(),
            services: HashMap::new(),
            default: Arc::new(Rule::Authenticated),
            invalid: Vec::new(),
            deny_all: Arc::new(Rule::Deny),
        }
    }

    /// Whether `path` is a pattern this policy takes: a method,
    /// `/package.Service/Method`, or every method of a service, `/package.Service/*`
    /// (also written `/package.Service/` or `/package.Service`); the leading `/` may be
    /// left out. Names are not empty and hold no whitespace, control character, `*`,
    /// `?` or `#`. Check input (a command line, a file) with it before building.
    ///
    /// ```
    /// use grpc_auth::Policy;
    /// assert!(Policy::is_pattern("/helloworld.Greeter/SayHello"));
    /// assert!(Policy::is_pattern("/grpc.health.v1.Health/*"));
    /// assert!(!Policy::is_pattern("/helloworld.Greeter/SayHello*"));
    /// assert!(!Policy::is_pattern(""));
    /// assert!(!Policy::is_pattern("*"));
    /// ```
    pub fn is_pattern(path: &str) -> bool {
        let rest = path.strip_prefix('/').unwrap_or(path);
        let name = |s: &str| {
            !s.is_empty()
                && !s.chars().any(|c| {
                    c.is_whitespace() || c.is_control() || matches!(c, '/' | '*' | '?' | '#')
                })
        };
        match rest.split_once('/') {
            None => name(rest),
            Some((service, method)) => {
                name(service) && (method.is_empty() || method == "*" || name(method))
            }
        }
    }

    /// The patterns given that are not patterns ([`is_pattern`](Self::is_pattern)):
    /// while there are any, every method is denied.
    pub fn invalid_patterns(&self) -> &[String] {
        &self.invalid
    }

    /// Sets the rule for methods no pattern matches (default: [`Rule::Authenticated`]).
    pub fn default_rule(mut self, rule: Rule) -> Self {
        self.default = Arc::new(rule);
        self
    }

    /// Sets `rule` for a method or service pattern.
    pub fn rule(mut self, path: &str, rule: Rule) -> Self {
        if let Some(entry) = self.entry(path) {
            *entry = rule;
        }
        self
    }

    /// The rule of a valid pattern; `None` (and every method denied) for another.
    fn entry(&mut self, path: &str) -> Option<&mut Rule> {
        if !Self::is_pattern(path) {
            tracing::error!(
                pattern = path,
                "grpc-auth: not a method pattern; the policy denies every method"
            );
            self.invalid.push(path.to_owned());
            return None;
        }
        let map = match pattern(path) {
            Pattern::Method(m) => self.methods.entry(m),
            Pattern::Service(s) => self.services.entry(s),
        };
        Some(Arc::make_mut(
            map.or_insert_with(|| Arc::new(Rule::Authenticated)),
        ))
    }

    /// Makes a method or service public.
    pub fn public(self, path: &str) -> Self {
        self.rule(path, Rule::Public)
    }

    /// Requires an authenticated caller (overrides a broader rule).
    pub fn authenticated(self, path: &str) -> Self {
        self.rule(path, Rule::Authenticated)
    }

    /// Requires `scope` (in addition to scopes already required there).
    pub fn require_scope(mut self, path: &str, scope: impl Into<String>) -> Self {
        if let Some(entry) = self.entry(path) {
            entry.add_requirement(Some(scope.into()), None);
        }
        self
    }

    /// Requires `role`; several roles on one pattern mean any of them.
    pub fn require_role(mut self, path: &str, role: impl Into<String>) -> Self {
        if let Some(entry) = self.entry(path) {
            entry.add_requirement(None, Some(role.into()));
        }
        self
    }

    /// Refuses a method or service to everyone.
    pub fn deny(self, path: &str) -> Self {
        self.rule(path, Rule::Deny)
    }

    /// The rule for a method path: exact method, else its service, else the default.
    pub fn rule_for(&self, method: &str) -> &Rule {
        self.shared_rule_for(method)
    }

    /// [`Policy::rule_for`], shareable with the request's future.
    pub(crate) fn shared_rule_for(&self, method: &str) -> &Arc<Rule> {
        if !self.invalid.is_empty() {
            return &self.deny_all;
        }
        if !self.methods.is_empty()
            && let Some(rule) = self.methods.get(method)
        {
            return rule;
        }
        if !self.services.is_empty()
            && let Some(rule) = method
                .rsplit_once('/')
                .and_then(|(s, _)| self.services.get(s))
        {
            return rule;
        }
        &self.default
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn a_pattern_that_is_not_one_denies_every_method() {
        for bad in [
            "",
            "/",
            "*",
            "/*",
            "/a.B/Say*",
            "/a.B/C/D",
            "/a b/C",
            "/a.B/C?x",
        ] {
            let p = Policy::new()
                .public("/grpc.health.v1.Health/*")
                .require_scope(bad, "s");
            assert_eq!(
                p.rule_for("/grpc.health.v1.Health/Check"),
                &Rule::Deny,
                "{bad:?}"
            );
            assert_eq!(p.rule_for("/a.B/C"), &Rule::Deny, "{bad:?}");
            assert_eq!(p.invalid_patterns(), [bad]);
        }
        for good in ["/a.B/C", "a.B/C", "/a.B/*", "/a.B/", "/a.B", "a.B"] {
            assert!(Policy::is_pattern(good), "{good:?}");
            assert!(Policy::new().public(good).invalid_patterns().is_empty());
        }
    }

    fn policy() -> Policy {
        Policy::new()
            .public("/grpc.health.v1.Health/*")
            .public("/helloworld.Greeter/Public")
            .require_scope("/helloworld.Greeter/*", "greeter.read")
            .require_scope("/helloworld.Greeter/Write", "greeter.write")
            .require_role("/admin.Admin", "admin")
            .require_role("/admin.Admin", "ops")
            .deny("/internal.Debug/Dump")
    }

    #[test]
    fn most_specific_rule_wins() {
        let p = policy();
        assert!(p.rule_for("/grpc.health.v1.Health/Check").is_public());
        assert!(p.rule_for("/helloworld.Greeter/Public").is_public());
        assert_eq!(
            p.rule_for("/helloworld.Greeter/SayHello"),
            &Rule::Require {
                scopes: vec!["greeter.read".into()],
                roles: vec![]
            }
        );
        assert_eq!(
            p.rule_for("/helloworld.Greeter/Write"),
            &Rule::Require {
                scopes: vec!["greeter.write".into()],
                roles: vec![]
            }
        );
        assert_eq!(p.rule_for("/other.Svc/M"), &Rule::Authenticated);
        assert_eq!(p.rule_for("not-a-grpc-path"), &Rule::Authenticated);
        assert_eq!(p.rule_for("/internal.Debug/Dump"), &Rule::Deny);
    }

    #[test]
    fn scopes_are_all_required_and_roles_any() {
        let p = policy();
        let reader = Principal::new("a", "jwt").with_scopes(["greeter.read"]);
        assert!(
            p.rule_for("/helloworld.Greeter/SayHello")
                .check(&reader)
                .is_ok()
        );
        let e = p
            .rule_for("/helloworld.Greeter/Write")
            .check(&reader)
            .unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (Code::PermissionDenied, "missing scope: greeter.write")
        );
        let ops = Principal::new("o", "jwt").with_roles(["ops"]);
        assert!(p.rule_for("/admin.Admin/Reboot").check(&ops).is_ok());
        let e = p
            .rule_for("/admin.Admin/Reboot")
            .check(&reader)
            .unwrap_err();
        assert_eq!(e.to_string(), "missing role: one of admin, ops");
        let e = p.rule_for("/internal.Debug/Dump").check(&ops).unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied);
    }

    #[test]
    fn default_rule_can_deny() {
        let p = Policy::new()
            .default_rule(Rule::Deny)
            .authenticated("/a.B/C");
        assert_eq!(p.rule_for("/x.Y/Z"), &Rule::Deny);
        assert_eq!(p.rule_for("/a.B/C"), &Rule::Authenticated);
    }
}
