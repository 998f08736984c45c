//! `Policy` from fuzzed patterns and rules, queried with fuzzed method paths. The
//! lookup must follow the documented order (exact method, then service, then the
//! default) and `Rule::check` its definition; nothing may panic.
//!
//! Input: lines. A line starting with byte `b < 0xf0` is a rule: `b % 8` picks the
//! builder call, the rest is the pattern (and, for scopes/roles, `pattern \t value`).
//! A line starting with `0xf0..` is a method path to look up; the last line also
//! gives the principal's scopes and roles for `Rule::check`.
#![no_main]

use std::collections::HashMap;

use grpc_auth::{Policy, Principal, Rule};
use libfuzzer_sys::fuzz_target;

/// The documented pattern forms: `/pkg.Service/Method` (exact), `/pkg.Service/*`,
/// `/pkg.Service/` or `/pkg.Service` (the whole service); a missing leading `/` is added.
fn key(path: &str) -> (bool, String) {
    let p = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    if let Some(s) = p.strip_suffix("/*") {
        return (false, s.to_owned());
    }
    if let Some(s) = p.strip_suffix('/') {
        return (false, s.to_owned());
    }
    let is_method = p.chars().skip(1).any(|c| c == '/');
    (is_method, p)
}

#[derive(Default)]
struct Model {
    methods: HashMap<String, Rule>,
    services: HashMap<String, Rule>,
    default: Option<Rule>,
}

impl Model {
    fn entry(&mut self, path: &str) -> &mut Rule {
        let (is_method, k) = key(path);
        let map = if is_method {
            &mut self.methods
        } else {
            &mut self.services
        };
        map.entry(k).or_insert(Rule::Authenticated)
    }

    fn require(&mut self, path: &str, scope: Option<String>, role: Option<String>) {
        let r = self.entry(path);
        if !matches!(r, Rule::Require { .. }) {
            *r = Rule::Require {
                scopes: vec![],
                roles: vec![],
            };
        }
        if let Rule::Require { scopes, roles } = r {
            scopes.extend(scope);
            roles.extend(role);
        }
    }

    fn rule_for(&self, m: &str) -> Rule {
        if let Some(r) = self.methods.get(m) {
            return r.clone();
        }
        if let Some((s, _)) = m.rsplit_once('/')
            && let Some(r) = self.services.get(s)
        {
            return r.clone();
        }
        self.default.clone().unwrap_or(Rule::Authenticated)
    }
}

fn check_model(rule: &Rule, p: &Principal) -> bool {
    match rule {
        Rule::Public | Rule::Authenticated => true,
        Rule::Deny => false,
        Rule::Require { scopes, roles } => {
            scopes.iter().all(|s| p.scopes().contains(s))
                && (roles.is_empty() || roles.iter().any(|r| p.roles().contains(r)))
        }
        // `Rule` is non-exhaustive; the model builds only the variants above.
        _ => unreachable!("the model made {rule:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut policy = Policy::new();
    let mut model = Model::default();
    let mut queries: Vec<String> = Vec::new();
    let mut patterns: Vec<String> = Vec::new();
    for line in data.split(|&b| b == b'\n').take(64) {
        let Some((&op, rest)) = line.split_first() else {
            continue;
        };
        let text = String::from_utf8_lossy(rest).into_owned();
        if op >= 0xf0 {
            queries.push(text);
            continue;
        }
        let (path, value) = match text.split_once('\t') {
            Some((p, v)) => (p.to_owned(), v.to_owned()),
            None => (text.clone(), String::from("s")),
        };
        patterns.push(path.clone());
        policy = match op % 8 {
            0 => {
                *model.entry(&path) = Rule::Public;
                policy.public(&path)
            }
            1 => {
                *model.entry(&path) = Rule::Authenticated;
                policy.authenticated(&path)
            }
            2 => {
                model.require(&path, Some(value.clone()), None);
                policy.require_scope(&path, value)
            }
            3 => {
                model.require(&path, None, Some(value.clone()));
                policy.require_role(&path, value)
            }
            4 => {
                *model.entry(&path) = Rule::Deny;
                policy.deny(&path)
            }
            5 => {
                let rule = Rule::Require {
                    scopes: vec![value.clone()],
                    roles: vec![path.clone()],
                };
                *model.entry(&path) = rule.clone();
                policy.rule(&path, rule)
            }
            6 => {
                model.default = Some(Rule::Deny);
                policy.default_rule(Rule::Deny)
            }
            _ => {
                model.default = Some(Rule::Public);
                policy.default_rule(Rule::Public)
            }
        };
    }
    // Each pattern as a method, and a method under it.
    for p in &patterns {
        let (_, k) = key(p);
        queries.push(format!("{k}/Method"));
        queries.push(k);
        queries.push(p.clone());
    }
    let last = queries.last().cloned().unwrap_or_default();
    let principal = Principal::new("fuzz", "test")
        .with_scopes(last.split(' ').map(str::to_owned))
        .with_roles(last.split('/').map(str::to_owned));
    for q in &queries {
        let got = policy.rule_for(q);
        let want = model.rule_for(q);
        assert_eq!(got, &want, "rule for {q:?}");
        assert_eq!(got.is_public(), matches!(want, Rule::Public));
        assert_eq!(
            got.check(&principal).is_ok(),
            check_model(&want, &principal),
            "check {q:?}"
        );
    }
});
