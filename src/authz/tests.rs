//! The policy format and decisions. The invalid-policy cases and the valid policies
//! are those of grpc-go's `authz/rbac_translator_test.go` (same documents, same error
//! text where grpc-go pins it); the decisions follow A43's rules.

use super::*;

fn parse(json: &str) -> Result<AuthorizationPolicy, String> {
    AuthorizationPolicy::from_json(json).map_err(|e| e.to_string())
}

fn refused(json: &str) -> String {
    parse(json).expect_err("the policy must be invalid")
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, v.parse().unwrap());
    }
    h
}

const PREFIX: &str = "invalid authorization policy: ";

#[test]
fn grpc_go_invalid_policies_are_refused() {
    let cases: [(&str, &str); 11] = [
        (r#"{"random": 123}"#, "failed to unmarshal policy"),
        ("{}", r#""name" is not present"#),
        (r#"{"name": 123}"#, "failed to unmarshal policy"),
        (
            r#"{"name": "authz-foo"}"#,
            r#""allow_rules" is not present"#,
        ),
        (
            r#"{"name": "authz-foo", "allow_rules": [{}]}"#,
            r#""allow_rules" 0: "name" is not present"#,
        ),
        (
            r#"{"name": "authz", "allow_rules": [{"name": "allow_policy_1",
                "request": {"headers":[{"key":"key-a", "values": ["value-a"]}, {}]}}]}"#,
            r#""allow_rules" 0: "headers" 1: "key" is not present"#,
        ),
        (
            r#"{"name": "authz", "allow_rules": [{"name": "allow_policy_1",
                "request": {"headers":[{"key":"key-a"}]}}]}"#,
            r#""allow_rules" 0: "headers" 0: "values" is not present"#,
        ),
        (
            r#"{"name": "authz", "allow_rules": [{"name": "allow_policy_1",
                "request": {"headers":[{"key":":method", "values":["GET"]}]}}]}"#,
            r#""allow_rules" 0: "headers" 0: unsupported "key" :method"#,
        ),
        (
            r#"{"name": "authz", "allow_rules": [{"name": "allow_authenticated",
                "source": {"principals":["*", ""]}}],
                "audit_logging_options": {"audit_condition": "ABC",
                "audit_loggers": [{"name": "stdout_logger", "config": {}, "is_optional": false}]}}"#,
            "failed to parse AuditCondition ABC",
        ),
        (
            r#"{"name": "authz", "allow_rules": [{"name": "allow_authenticated",
                "source": {"principals":["*", ""]}}],
                "audit_logging_options": {"audit_condition": "NONE",
                "audit_loggers": [{"name": "stdout_logger", "config": "abc", "is_optional": false}]}}"#,
            "failed to unmarshal policy",
        ),
        (
            r#"{"name": "authz", "allow_rules": [{"name": "allow_authenticated",
                "source": {"principals":["*", ""]}}],
                "deny_rules": [{"name": "deny_policy_1", "source": {"principals":["spiffe://foo.abc"]}}],
                "audit_logging_options": {"audit_condition": "ON_DENY",
                "audit_loggers": [{"name": "stdout_logger", "is_optional": false}]}}"#,
            "AuditLogger Config field cannot be nil",
        ),
    ];
    for (json, want) in cases {
        let got = refused(json);
        let got = got.strip_prefix(PREFIX).unwrap_or(&got);
        assert!(
            got.starts_with(want) || got.contains(want),
            "{json}\nwant: {want}\ngot:  {got}"
        );
    }
}

#[test]
fn every_unsupported_header_key_is_refused_whatever_its_case() {
    for key in [
        ":path",
        "grpc-timeout",
        "Host",
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "TE",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        let json = format!(
            r#"{{"name": "p", "allow_rules": [{{"name": "r",
                "request": {{"headers": [{{"key": "{key}", "values": ["x"]}}]}}}}]}}"#
        );
        let got = refused(&json);
        assert!(
            got.contains(&format!(
                r#"unsupported "key" {}"#,
                key.to_ascii_lowercase()
            )),
            "{got}"
        );
    }
}

#[test]
fn unknown_fields_anywhere_are_refused() {
    for json in [
        r#"{"name": "p", "allow_rules": [{"name": "r", "extra": 1}]}"#,
        r#"{"name": "p", "allow_rules": [{"name": "r", "source": {"principals": [], "x": 1}}]}"#,
        r#"{"name": "p", "allow_rules": [{"name": "r", "request": {"methods": ["GET"]}}]}"#,
        r#"{"name": "p", "allow_rules": [{"name": "r", "request": {"headers": [{"key": "k", "values": ["v"], "x": 1}]}}]}"#,
        r#"{"name": "p", "allow_rules": [{"name": "r"}], "audit_logging_options": {"x": 1}}"#,
        r#"{"name": "p", "allow_rules": [{"name": "r"}], "audit_logging_options": {"audit_loggers": [{"name": "l", "config": {}, "x": 1}]}}"#,
    ] {
        assert!(
            refused(json).contains("failed to unmarshal policy"),
            "{json}"
        );
    }
}

/// grpc-go's "valid policy" document.
const VALID: &str = r#"{
    "name": "authz",
    "deny_rules": [{
        "name": "deny_policy_1",
        "source": {"principals": ["spiffe://foo.abc", "spiffe://bar*", "*baz", "spiffe://abc.*.com"]}
    }],
    "allow_rules": [
        {"name": "allow_policy_1", "source": {"principals": ["*"]}, "request": {"paths": ["path-foo*"]}},
        {"name": "allow_policy_2", "request": {
            "paths": ["path-bar", "*baz"],
            "headers": [{"key": "key-1", "values": ["foo", "*bar"]}, {"key": "key-2", "values": ["baz*"]}]
        }}
    ]
}"#;

fn decide(
    p: &AuthorizationPolicy,
    path: &str,
    h: &HeaderMap,
    peer: &Peer,
) -> (bool, Option<String>) {
    let d = p.decide(path, h, peer);
    (d.allowed, d.matched_rule)
}

fn allowed_by(rule: &str) -> (bool, Option<String>) {
    (true, Some(rule.to_owned()))
}

fn denied_by(rule: &str) -> (bool, Option<String>) {
    (false, Some(rule.to_owned()))
}

const NO_RULE: (bool, Option<String>) = (false, None);

#[test]
fn grpc_go_valid_policy_decides_as_its_translation() {
    let p = parse(VALID).unwrap();
    assert_eq!(p.name(), "authz");
    let none = HeaderMap::new();
    let anyone = Peer::tls(["spiffe://someone.example"]);
    // Deny rule: each principal pattern, whatever the request.
    for name in [
        "spiffe://foo.abc",
        "spiffe://bar.example",
        "spiffe://x.baz",
        "spiffe://abc.*.com",
    ] {
        assert_eq!(
            decide(&p, "path-foo-1", &none, &Peer::tls([name])),
            denied_by("deny_policy_1"),
            "{name}"
        );
    }
    // "spiffe://abc.*.com" is exact: the '*' inside is a character.
    assert_eq!(
        decide(&p, "path-foo-1", &none, &Peer::tls(["spiffe://abc.x.com"])),
        allowed_by("allow_policy_1")
    );
    // allow_policy_1: any authenticated principal ("*") and a path prefix.
    assert_eq!(
        decide(&p, "path-foo", &none, &anyone),
        allowed_by("allow_policy_1")
    );
    assert_eq!(
        decide(&p, "path-foo", &none, &Peer::Unauthenticated),
        NO_RULE,
        "\"*\" needs a principal"
    );
    assert_eq!(
        decide(&p, "path-foo", &none, &Peer::Authenticated(Vec::new())),
        NO_RULE,
        "\"*\" needs a non-empty principal"
    );
    // allow_policy_2: paths ORed, headers ANDed, one header's values ORed.
    let both = headers(&[("key-1", "foo"), ("key-2", "baz-1")]);
    for path in ["path-bar", "x-baz"] {
        assert_eq!(
            decide(&p, path, &both, &Peer::Unauthenticated),
            allowed_by("allow_policy_2"),
            "{path}"
        );
    }
    assert_eq!(
        decide(
            &p,
            "path-bar",
            &headers(&[("key-1", "xbar"), ("key-2", "baz")]),
            &anyone
        ),
        allowed_by("allow_policy_2")
    );
    assert_eq!(
        decide(&p, "path-bar", &headers(&[("key-1", "foo")]), &anyone),
        NO_RULE,
        "key-2 missing"
    );
    assert_eq!(
        decide(
            &p,
            "path-bar",
            &headers(&[("key-1", "food"), ("key-2", "baz")]),
            &anyone
        ),
        NO_RULE,
        "key-1 neither foo nor *bar"
    );
    assert_eq!(decide(&p, "path-bars", &both, &anyone), NO_RULE);
}

#[test]
fn deny_rules_win_over_allow_rules() {
    let p = parse(
        r#"{"name": "p",
            "deny_rules": [{"name": "deny_admin", "request": {"paths": ["/svc/Admin"]}}],
            "allow_rules": [{"name": "all"}]}"#,
    )
    .unwrap();
    let h = HeaderMap::new();
    assert_eq!(
        decide(&p, "/svc/Admin", &h, &Peer::Unauthenticated),
        denied_by("deny_admin")
    );
    assert_eq!(
        decide(&p, "/svc/Other", &h, &Peer::Unauthenticated),
        allowed_by("all"),
        "an empty rule matches every call"
    );
}

#[test]
fn the_empty_principal_matches_a_tls_peer_without_a_certificate() {
    // grpc-go's "allow authenticated": ["*", ""].
    let p = parse(
        r#"{"name": "authz", "allow_rules": [{"name": "allow_authenticated",
            "source": {"principals": ["*", ""]}}]}"#,
    )
    .unwrap();
    let h = HeaderMap::new();
    assert_eq!(
        decide(&p, "/a/b", &h, &Peer::Authenticated(Vec::new())),
        allowed_by("allow_authenticated")
    );
    assert_eq!(
        decide(&p, "/a/b", &h, &Peer::tls(["spiffe://x/y"])),
        allowed_by("allow_authenticated")
    );
    assert_eq!(
        decide(&p, "/a/b", &h, &Peer::Unauthenticated),
        NO_RULE,
        "plaintext matches no principal"
    );
}

#[test]
fn any_of_a_peers_names_may_match() {
    let p = parse(
        r#"{"name": "p", "allow_rules": [{"name": "dns", "source": {"principals": ["*.example.com"]}}]}"#,
    )
    .unwrap();
    let peer = Peer::tls(["internal.example.net", "api.example.com"]);
    assert_eq!(
        decide(&p, "/a/b", &HeaderMap::new(), &peer),
        allowed_by("dns")
    );
}

#[test]
fn repeated_header_values_are_joined_with_commas() {
    let p = parse(
        r#"{"name": "p", "allow_rules": [{"name": "r",
            "request": {"headers": [{"key": "X-Tenant", "values": ["a,b"]}]}}]}"#,
    )
    .unwrap();
    let two = headers(&[("x-tenant", "a"), ("x-tenant", "b")]);
    assert_eq!(
        decide(&p, "/a/b", &two, &Peer::Unauthenticated),
        allowed_by("r"),
        "keys are lower-cased; values joined"
    );
    assert_eq!(
        decide(
            &p,
            "/a/b",
            &headers(&[("x-tenant", "a")]),
            &Peer::Unauthenticated
        ),
        NO_RULE
    );
}

#[test]
fn star_needs_a_non_empty_header_value() {
    let p = parse(
        r#"{"name": "p", "allow_rules": [{"name": "r",
            "request": {"headers": [{"key": "x-id", "values": ["*"]}]}}]}"#,
    )
    .unwrap();
    assert_eq!(
        decide(
            &p,
            "/a/b",
            &headers(&[("x-id", "")]),
            &Peer::Unauthenticated
        ),
        NO_RULE
    );
    assert_eq!(
        decide(
            &p,
            "/a/b",
            &headers(&[("x-id", "7")]),
            &Peer::Unauthenticated
        ),
        allowed_by("r")
    );
    assert_eq!(
        decide(&p, "/a/b", &HeaderMap::new(), &Peer::Unauthenticated),
        NO_RULE
    );
}

#[test]
fn audit_options_follow_grpc_go() {
    let base =
        r#""name": "authz", "allow_rules": [{"name": "a", "source": {"principals": ["*", ""]}}]"#;
    let p = parse(&format!(
        r#"{{{base}, "audit_logging_options": {{"audit_condition": "NONE"}}}}"#
    ))
    .unwrap();
    assert_eq!(p.audit_condition(), AuditCondition::None);
    assert!(p.audit_loggers().is_empty(), "missing audit logger config");
    let p = parse(&format!(
        r#"{{{base}, "audit_logging_options": {{"audit_loggers": [{{"name": "stdout_logger", "config": {{}}, "is_optional": false}}]}}}}"#
    ))
    .unwrap();
    assert_eq!(
        p.audit_condition(),
        AuditCondition::None,
        "missing audit condition"
    );
    assert_eq!(p.audit_loggers()[0].name, "stdout_logger");
    for (text, cond) in [
        ("ON_DENY", AuditCondition::OnDeny),
        ("ON_ALLOW", AuditCondition::OnAllow),
        ("ON_DENY_AND_ALLOW", AuditCondition::OnDenyAndAllow),
    ] {
        let p = parse(&format!(
            r#"{{{base}, "audit_logging_options": {{"audit_condition": "{text}", "audit_loggers": [{{"name": "stdout_logger", "config": {{"abc": 123}}}}]}}}}"#
        ))
        .unwrap();
        assert_eq!(p.audit_condition(), cond);
        assert_eq!(p.audit_loggers()[0].config["abc"], 123);
    }
    assert!(AuditCondition::OnDeny.audits(false) && !AuditCondition::OnDeny.audits(true));
    assert!(AuditCondition::OnAllow.audits(true) && !AuditCondition::OnAllow.audits(false));
    assert!(AuditCondition::OnDenyAndAllow.audits(true));
    assert!(!AuditCondition::None.audits(false));
}

#[test]
fn decisions_read_as_text() {
    assert_eq!(
        Decision {
            allowed: true,
            matched_rule: Some("r".into())
        }
        .to_string(),
        "allowed by r"
    );
    assert_eq!(
        Decision {
            allowed: false,
            matched_rule: None
        }
        .to_string(),
        "denied: no rule matched"
    );
}
