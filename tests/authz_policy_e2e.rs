//! A gRPC authorization policy (gRFC A43) in the layer, end to end: the greeter over TLS
//! with API keys and JWTs, the policy applied after authentication (callers named
//! `{scheme}:{subject}`), and on public methods as an unauthenticated peer.

#[path = "../examples/support/greeter.rs"]
mod greeter;
#[path = "../examples/support/tls.rs"]
mod tls;
#[path = "../examples/support/tokens.rs"]
mod tokens;

use grpc_auth::authz::AuthorizationPolicy;
use grpc_auth_protos::helloworld::HelloRequest;
use grpc_auth_protos::helloworld::greeter_client::GreeterClient;
use serde_json::json;
use tonic::transport::Channel;
use tonic::{Code, Request};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const SECRET: &str = "authz-e2e-jwt-secret-0123456789abcdef";

const POLICY: &str = r#"{
  "name": "greeter",
  "deny_rules": [{
    "name": "no_admin_for_billing",
    "source": {"principals": ["api-key:billing"]},
    "request": {"paths": ["/helloworld.Greeter/SayHelloAdmin"]}
  }],
  "allow_rules": [
    {"name": "keys", "source": {"principals": ["api-key:*"]}},
    {"name": "acme_users", "source": {"principals": ["jwt:*"]},
     "request": {"headers": [{"key": "x-tenant", "values": ["acme"]}]}},
    {"name": "health", "request": {"paths": ["/grpc.health.v1.Health/*"]}}
  ]
}"#;

async fn server(policy: &str) -> Channel {
    let pki = tls::test_pki();
    let config = greeter::ServerConfig {
        api_keys: vec![
            ("k-billing".into(), "billing".into()),
            ("k-ops".into(), "ops".into()),
        ],
        jwt_hs256_secret: Some(SECRET.into()),
        authz_policy: Some(
            AuthorizationPolicy::from_json(policy)
                .expect("valid policy")
                .into(),
        ),
        tls: Some((pki.cert_pem.into_bytes(), pki.key_pem.into_bytes())),
        ..Default::default()
    };
    let addr = greeter::spawn(config).await;
    tls::channel(addr.port(), &pki.ca_pem).await
}

async fn hello(
    ch: &Channel,
    admin: bool,
    metadata: &[(&'static str, &str)],
) -> Result<String, (Code, String)> {
    let mut req = Request::new(HelloRequest { name: "Ada".into() });
    for (k, v) in metadata {
        req.metadata_mut().insert(*k, v.parse().unwrap());
    }
    let mut c = GreeterClient::new(ch.clone());
    let res = if admin {
        c.say_hello_admin(req).await
    } else {
        c.say_hello(req).await
    };
    res.map(|r| r.into_inner().message)
        .map_err(|s| (s.code(), s.message().to_owned()))
}

fn denied() -> Result<String, (Code, String)> {
    Err((
        Code::PermissionDenied,
        "unauthorized RPC request rejected".to_owned(),
    ))
}

fn jwt(sub: &str) -> String {
    let now = tokens::now();
    let token = tokens::hs256(SECRET, &json!({"sub": sub, "iat": now, "exp": now + 600}));
    format!("Bearer {token}")
}

#[tokio::test]
async fn deny_rules_win_and_allow_rules_admit_by_scheme_and_subject() {
    let ch = server(POLICY).await;
    assert_eq!(
        hello(&ch, false, &[("x-api-key", "k-billing")]).await,
        Ok("Hello Ada, authenticated as billing via api-key".to_owned())
    );
    assert_eq!(
        hello(&ch, true, &[("x-api-key", "k-billing")]).await,
        denied()
    );
    assert_eq!(
        hello(&ch, true, &[("x-api-key", "k-ops")]).await,
        Ok("[admin] Hello Ada, authenticated as ops via api-key".to_owned())
    );
}

#[tokio::test]
async fn header_rules_and_no_matching_rule() {
    let ch = server(POLICY).await;
    let ada = jwt("ada");
    assert_eq!(
        hello(&ch, false, &[("authorization", &ada), ("x-tenant", "acme")]).await,
        Ok("Hello Ada, authenticated as ada via jwt".to_owned())
    );
    assert_eq!(
        hello(
            &ch,
            false,
            &[("authorization", &ada), ("x-tenant", "umbrella")]
        )
        .await,
        denied()
    );
    assert_eq!(
        hello(&ch, false, &[("authorization", &ada)]).await,
        denied(),
        "no rule matches: denied"
    );
    // Authentication still comes first: a bad token is UNAUTHENTICATED, not denied.
    assert_eq!(
        hello(
            &ch,
            false,
            &[("authorization", "Bearer x.y.z"), ("x-tenant", "acme")]
        )
        .await
        .unwrap_err()
        .0,
        Code::Unauthenticated
    );
}

#[tokio::test]
async fn a_jwt_subject_cannot_pose_as_an_api_key_principal() {
    let ch = server(POLICY).await;
    // The JWT's subject is "api-key:billing"; as a JWT caller it is
    // "jwt:api-key:billing", which "api-key:*" does not match.
    assert_eq!(
        hello(&ch, false, &[("authorization", &jwt("api-key:billing"))]).await,
        denied()
    );
}

async fn health(ch: &Channel) -> Result<(), (Code, String)> {
    HealthClient::new(ch.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|_| ())
        .map_err(|s| (s.code(), s.message().to_owned()))
}

#[tokio::test]
async fn public_methods_are_checked_as_from_an_unauthenticated_peer() {
    let ch = server(POLICY).await;
    assert_eq!(health(&ch).await, Ok(()), "allowed by the health rule");
    let without_health = r#"{"name": "p", "allow_rules": [{"name": "keys",
        "source": {"principals": ["api-key:*"]}}]}"#;
    let ch = server(without_health).await;
    assert_eq!(
        health(&ch).await,
        Err((
            Code::PermissionDenied,
            "unauthorized RPC request rejected".to_owned()
        ))
    );
}

/// Records the audited decisions.
#[derive(Debug, Default)]
struct Capture(std::sync::Mutex<Vec<grpc_auth::authz::AuditEvent>>);

impl grpc_auth::authz::AuditLogger for Capture {
    fn log(&self, event: &grpc_auth::authz::AuditEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

async fn audited(condition: &str) -> (Channel, std::sync::Arc<Capture>) {
    let capture = std::sync::Arc::new(Capture::default());
    let sink = capture.clone();
    let registry = grpc_auth::authz::AuditLoggerRegistry::new().register("capture", move |_| {
        Ok(sink.clone() as std::sync::Arc<dyn grpc_auth::authz::AuditLogger>)
    });
    let mut doc: serde_json::Value = serde_json::from_str(POLICY).unwrap();
    doc["audit_logging_options"] = json!({
        "audit_condition": condition,
        "audit_loggers": [
            {"name": "capture", "config": {}},
            {"name": "not_installed", "config": {}, "is_optional": true}
        ]
    });
    let policy =
        AuthorizationPolicy::from_json_with(&doc.to_string(), &registry).expect("valid policy");
    let pki = tls::test_pki();
    let config = greeter::ServerConfig {
        api_keys: vec![
            ("k-billing".into(), "billing".into()),
            ("k-ops".into(), "ops".into()),
        ],
        authz_policy: Some(policy.into()),
        tls: Some((pki.cert_pem.into_bytes(), pki.key_pem.into_bytes())),
        ..Default::default()
    };
    let addr = greeter::spawn(config).await;
    (tls::channel(addr.port(), &pki.ca_pem).await, capture)
}

fn event(
    method: &str,
    principal: &str,
    rule: &str,
    authorized: bool,
) -> grpc_auth::authz::AuditEvent {
    grpc_auth::authz::AuditEvent {
        rpc_method: method.into(),
        principal: principal.into(),
        policy_name: "greeter".into(),
        matched_rule: rule.into(),
        authorized,
    }
}

#[tokio::test]
async fn decisions_are_audited_as_the_condition_says_and_never_carry_a_credential() {
    let (ch, capture) = audited("ON_DENY_AND_ALLOW").await;
    assert!(
        hello(&ch, false, &[("x-api-key", "k-billing")])
            .await
            .is_ok()
    );
    assert_eq!(
        hello(&ch, true, &[("x-api-key", "k-billing")]).await,
        denied()
    );
    let events = capture.0.lock().unwrap().clone();
    assert_eq!(
        events,
        vec![
            event(
                "/helloworld.Greeter/SayHello",
                "api-key:billing",
                "keys",
                true
            ),
            event(
                "/helloworld.Greeter/SayHelloAdmin",
                "api-key:billing",
                "no_admin_for_billing",
                false
            ),
        ]
    );
    assert!(!format!("{events:?}").contains("k-billing"));

    let (ch, capture) = audited("ON_DENY").await;
    assert!(hello(&ch, false, &[("x-api-key", "k-ops")]).await.is_ok());
    assert_eq!(
        hello(&ch, true, &[("x-api-key", "k-billing")]).await,
        denied()
    );
    assert_eq!(
        capture.0.lock().unwrap().clone(),
        vec![event(
            "/helloworld.Greeter/SayHelloAdmin",
            "api-key:billing",
            "no_admin_for_billing",
            false
        )]
    );

    let (ch, capture) = audited("NONE").await;
    assert!(hello(&ch, false, &[("x-api-key", "k-ops")]).await.is_ok());
    assert!(capture.0.lock().unwrap().is_empty());
}

#[test]
fn a_policy_naming_an_unregistered_logger_is_invalid() {
    let mut doc: serde_json::Value = serde_json::from_str(POLICY).unwrap();
    doc["audit_logging_options"] =
        json!({"audit_condition": "ON_DENY", "audit_loggers": [{"name": "nope", "config": {}}]});
    assert_eq!(
        AuthorizationPolicy::from_json(&doc.to_string())
            .unwrap_err()
            .to_string(),
        "invalid authorization policy: audit logger nope is not registered"
    );
}
