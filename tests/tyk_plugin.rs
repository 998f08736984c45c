//! The Tyk coprocess plugin driven the way the gateway drives it: a tonic
//! `coprocess.Dispatcher` client over plaintext sending Objects shaped like
//! `gateway/coprocess.go` BuildObject (Go-canonical header names, first value only,
//! `Host` added, no session on CustomKeyCheck, `return_overrides.response_code = -1`,
//! spec with OrgID/APIID/config_data). Expected signatures are computed here from the
//! spec and hmac.sh with `hmac`/`sha2`/`base64` directly.

#[path = "../examples/support/flags.rs"]
mod flags;
#[path = "../examples/support/tyk.rs"]
mod tyk;

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use grpc_auth::clock::ManualClock;
use grpc_auth_protos::coprocess::dispatcher_client::DispatcherClient;
use grpc_auth_protos::coprocess::{
    Event, EventReply, HookType, MiniRequestObject, Object, ResponseObject, ReturnOverrides,
    SessionState,
};
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};
use tonic::transport::Channel;

/// The tyk-demo key id and secret (hmac.sh: the secret is used as its ASCII bytes).
const KEY: &str = "eyJvcmciOiI1ZTlkOTU0NGExZGNkNjAwMDFkMGVkMjAiLCJpZCI6ImdycGNfaG1hY19rZXkiLCJoIjoibXVybXVyNjQifQ==";
const SECRET: &str = "c2VjcmV0";
const NOW: u64 = 1_700_000_000;
const DATE: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
const PATH: &str = "/grpc-custom-auth/get";

struct Plugin {
    client: DispatcherClient<Channel>,
    clock: ManualClock,
}

async fn plugin() -> Plugin {
    let clock = ManualClock::at_unix(NOW);
    let config = tyk::PluginConfig {
        hmac_keys: vec![
            (KEY.into(), SECRET.into()),
            ("svc-b".into(), "s3cret-b".into()),
        ],
        clock: Arc::new(clock.clone()),
        ..Default::default()
    };
    let addr = tyk::spawn(tyk::TykPlugin::new(&config)).await;
    let client = DispatcherClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    Plugin { client, clock }
}

fn b64_hmac_sha512(secret: &str, msg: &str) -> String {
    let mut m = Hmac::<Sha512>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(msg.as_bytes());
    STANDARD.encode(m.finalize().into_bytes())
}

fn b64_hmac_sha256(secret: &str, msg: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(msg.as_bytes());
    STANDARD.encode(m.finalize().into_bytes())
}

/// Python's `urllib.parse.quote_plus` on base64 text.
fn quote_plus(b64: &str) -> String {
    b64.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

/// hmac.sh: `Authorization: Signature keyId="KEY",algorithm="hmac-sha512",signature="..."`.
fn hmac_sh_authorization(date: &str) -> String {
    let sig = quote_plus(&b64_hmac_sha512(SECRET, &format!("date: {date}")));
    format!(r#"Signature keyId="{KEY}",algorithm="hmac-sha512",signature="{sig}""#)
}

/// An Object as the gateway builds it for `hook`.
fn gateway_object(hook: HookType, hook_name: &str, headers: &[(&str, &str)]) -> Object {
    let mut h: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    h.insert("Host".into(), "tyk-gateway.localhost:8080".into());
    h.insert("User-Agent".into(), "curl/8.5.0".into());
    h.insert("Accept".into(), "*/*".into());
    Object {
        hook_type: hook as i32,
        hook_name: hook_name.into(),
        request: Some(MiniRequestObject {
            headers: h,
            url: PATH.into(),
            request_uri: PATH.into(),
            method: "GET".into(),
            scheme: "http".into(),
            return_overrides: Some(ReturnOverrides {
                response_code: -1,
                ..Default::default()
            }),
            ..Default::default()
        }),
        session: None,
        metadata: HashMap::new(),
        spec: HashMap::from([
            ("OrgID".into(), "5e9d9544a1dcd60001d0ed20".into()),
            ("APIID".into(), "python-grpc-custom-auth".into()),
            ("bundle_hash".into(), String::new()),
            ("config_data".into(), "{}".into()),
        ]),
        response: None,
    }
}

fn auth_check(headers: &[(&str, &str)]) -> Object {
    gateway_object(HookType::CustomKeyCheck, "CustomHMACCheck", headers)
}

async fn dispatch(p: &mut Plugin, object: Object) -> Object {
    p.client.dispatch(object).await.unwrap().into_inner()
}

/// The session, token, response code and error of an auth_check reply.
#[derive(Debug, PartialEq)]
struct Outcome {
    session: Option<SessionState>,
    token: Option<String>,
    code: i32,
    error: String,
}

fn outcome(reply: &Object) -> Outcome {
    let overrides = reply
        .request
        .as_ref()
        .and_then(|r| r.return_overrides.clone())
        .unwrap_or_default();
    Outcome {
        session: reply.session.clone(),
        token: reply.metadata.get("token").cloned(),
        code: overrides.response_code,
        error: overrides.response_error,
    }
}

fn expected_session(key_id: &str, algorithm: &str) -> SessionState {
    SessionState {
        rate: 1000.0,
        per: 1.0,
        allowance: 1000.0,
        quota_max: -1,
        quota_remaining: -1,
        quota_renewal_rate: 3600,
        quota_renews: NOW as i64 + 3600,
        expires: 0,
        alias: key_id.into(),
        last_updated: NOW.to_string(),
        metadata: HashMap::from([
            ("token".into(), key_id.into()),
            ("hmac_algorithm".into(), algorithm.into()),
        ]),
        ..Default::default()
    }
}

fn accepted(key_id: &str, algorithm: &str) -> Outcome {
    Outcome {
        session: Some(expected_session(key_id, algorithm)),
        token: Some(key_id.into()),
        code: -1,
        error: String::new(),
    }
}

fn refused(code: i32, error: &str) -> Outcome {
    Outcome {
        session: None,
        token: None,
        code,
        error: error.into(),
    }
}

#[tokio::test]
async fn hmac_sh_sha512_date_only_is_accepted_with_session_and_token() {
    let mut p = plugin().await;
    let reply = dispatch(
        &mut p,
        auth_check(&[
            ("Authorization", &hmac_sh_authorization(DATE)),
            ("Date", DATE),
        ]),
    )
    .await;
    assert_eq!(outcome(&reply), accepted(KEY, "hmac-sha512"));
    // The rest of the object comes back as sent.
    let sent = auth_check(&[
        ("Authorization", &hmac_sh_authorization(DATE)),
        ("Date", DATE),
    ]);
    assert_eq!(reply.request, sent.request);
    assert_eq!(reply.spec, sent.spec);
    assert_eq!(reply.hook_name, "CustomHMACCheck");
}

#[tokio::test]
async fn sha256_over_request_target_is_accepted_and_bound_to_the_path() {
    let mut p = plugin().await;
    let signing = format!("(request-target): get {PATH}\ndate: {DATE}");
    let sig = quote_plus(&b64_hmac_sha256("s3cret-b", &signing));
    let auth = format!(
        r#"Signature keyId="svc-b",algorithm="hmac-sha256",headers="(request-target) date",signature="{sig}""#
    );
    let reply = dispatch(
        &mut p,
        auth_check(&[("Authorization", &auth), ("Date", DATE)]),
    )
    .await;
    assert_eq!(outcome(&reply), accepted("svc-b", "hmac-sha256"));

    // The same headers on another path do not verify.
    let mut other = auth_check(&[("Authorization", &auth), ("Date", DATE)]);
    if let Some(r) = other.request.as_mut() {
        r.url = "/grpc-custom-auth/post".into();
        r.request_uri = "/grpc-custom-auth/post".into();
    }
    let reply = dispatch(&mut p, other).await;
    assert_eq!(outcome(&reply), refused(401, "HMAC signature mismatch"));
}

#[tokio::test]
async fn missing_headers_are_400() {
    let mut p = plugin().await;
    let reply = dispatch(&mut p, auth_check(&[("Date", DATE)])).await;
    assert_eq!(
        outcome(&reply),
        refused(400, "missing authorization metadata")
    );
    let reply = dispatch(
        &mut p,
        auth_check(&[("Authorization", &hmac_sh_authorization(DATE))]),
    )
    .await;
    assert_eq!(outcome(&reply), refused(400, "missing date metadata"));
}

#[tokio::test]
async fn malformed_headers_are_400() {
    let mut p = plugin().await;
    for (auth, date, error) in [
        (
            r#"Signature keyId="k",signature="AA==""#,
            DATE,
            "malformed HMAC Signature: missing parameter algorithm",
        ),
        (
            r#"Signature keyId=k,algorithm="hmac-sha512",signature="AA==""#,
            DATE,
            "malformed HMAC Signature: value of keyId is not quoted",
        ),
        (
            r#"Signature keyId="k",algorithm="hmac-md5",signature="AA==""#,
            DATE,
            "unsupported HMAC algorithm",
        ),
        ("Bearer abc", DATE, "authorization is not an HMAC Signature"),
        (
            &hmac_sh_authorization(DATE),
            "yesterday",
            "date metadata is not an HTTP date",
        ),
    ] {
        let reply = dispatch(
            &mut p,
            auth_check(&[("Authorization", auth), ("Date", date)]),
        )
        .await;
        assert_eq!(outcome(&reply), refused(400, error), "{auth}");
    }
}

#[tokio::test]
async fn unknown_key_and_bad_signature_are_401() {
    let mut p = plugin().await;
    let auth = hmac_sh_authorization(DATE).replace(KEY, "someone-else");
    let reply = dispatch(
        &mut p,
        auth_check(&[("Authorization", &auth), ("Date", DATE)]),
    )
    .await;
    assert_eq!(outcome(&reply), refused(401, "unknown HMAC key id"));

    let sig = quote_plus(&b64_hmac_sha512("wrong", &format!("date: {DATE}")));
    let auth = format!(r#"Signature keyId="{KEY}",algorithm="hmac-sha512",signature="{sig}""#);
    let reply = dispatch(
        &mut p,
        auth_check(&[("Authorization", &auth), ("Date", DATE)]),
    )
    .await;
    assert_eq!(outcome(&reply), refused(401, "HMAC signature mismatch"));
}

#[tokio::test]
async fn skewed_date_is_401() {
    let mut p = plugin().await;
    let headers = [
        ("Authorization", hmac_sh_authorization(DATE)),
        ("Date", DATE.to_owned()),
    ];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    p.clock.set_unix(NOW + 301);
    let reply = dispatch(&mut p, auth_check(&headers)).await;
    assert_eq!(
        outcome(&reply),
        refused(401, "date is outside the allowed clock skew of 300 s")
    );
    p.clock.set_unix(NOW - 301);
    let reply = dispatch(&mut p, auth_check(&headers)).await;
    assert_eq!(
        outcome(&reply),
        refused(401, "date is outside the allowed clock skew of 300 s")
    );
}

#[tokio::test]
async fn replay_is_401() {
    let mut p = plugin().await;
    let auth = hmac_sh_authorization(DATE);
    let object = || auth_check(&[("Authorization", &auth), ("Date", DATE)]);
    let reply = dispatch(&mut p, object()).await;
    assert_eq!(outcome(&reply), accepted(KEY, "hmac-sha512"));
    let reply = dispatch(&mut p, object()).await;
    assert_eq!(
        outcome(&reply),
        refused(401, "HMAC signature already used (replay)")
    );
}

#[tokio::test]
async fn replay_protection_can_be_turned_off() {
    let config = tyk::PluginConfig {
        hmac_keys: vec![(KEY.into(), SECRET.into())],
        clock: Arc::new(ManualClock::at_unix(NOW)),
        replay_cache_size: 0,
        ..Default::default()
    };
    let addr = tyk::spawn(tyk::TykPlugin::new(&config)).await;
    let mut client = DispatcherClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let auth = hmac_sh_authorization(DATE);
    for _ in 0..2 {
        let reply = client
            .dispatch(auth_check(&[("Authorization", &auth), ("Date", DATE)]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(outcome(&reply), accepted(KEY, "hmac-sha512"));
    }
}

#[tokio::test]
async fn an_older_gateway_without_return_overrides_still_gets_a_failure() {
    let mut p = plugin().await;
    let mut object = auth_check(&[("Date", DATE)]);
    if let Some(r) = object.request.as_mut() {
        r.return_overrides = None;
    }
    let reply = dispatch(&mut p, object).await;
    assert_eq!(
        outcome(&reply),
        refused(400, "missing authorization metadata")
    );
    let reply = dispatch(
        &mut p,
        Object {
            hook_type: HookType::CustomKeyCheck as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        outcome(&reply),
        refused(400, "missing authorization metadata")
    );
}

#[tokio::test]
async fn other_hooks_are_returned_unchanged() {
    let mut p = plugin().await;
    let auth = hmac_sh_authorization(DATE);
    let headers = [("Authorization", auth.as_str()), ("Date", DATE)];
    let mut post = gateway_object(HookType::Post, "MyPostHook", &headers);
    post.session = Some(expected_session(KEY, "hmac-sha512"));
    post.metadata = HashMap::from([("token".into(), KEY.into())]);
    let mut response = gateway_object(HookType::Response, "MyResponseHook", &headers);
    response.response = Some(ResponseObject {
        status_code: 200,
        raw_body: b"{\"ok\":true}".to_vec(),
        body: "{\"ok\":true}".into(),
        headers: HashMap::from([("Content-Type".into(), "application/json".into())]),
        ..Default::default()
    });
    for object in [
        gateway_object(HookType::Pre, "MyPreHook", &headers),
        post,
        gateway_object(HookType::PostKeyAuth, "MyPostKeyAuth", &headers),
        response,
    ] {
        let reply = dispatch(&mut p, object.clone()).await;
        assert_eq!(reply, object, "{:?}", HookType::try_from(object.hook_type));
    }
    // A Pre hook is not verified: the same signature still verifies once afterwards.
    let reply = dispatch(&mut p, auth_check(&headers)).await;
    assert_eq!(outcome(&reply), accepted(KEY, "hmac-sha512"));
}

#[tokio::test]
async fn dispatch_event_replies() {
    let mut p = plugin().await;
    let reply = p
        .client
        .dispatch_event(Event {
            payload: r#"{"event":"AuthFailure","meta":{"Key":"abc","Path":"/x"}}"#.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply, EventReply {});
}

#[test]
fn logged_json_leaves_credentials_out() {
    let object = gateway_object(
        HookType::Pre,
        "MyPreHook",
        &[
            ("Authorization", "Signature keyId=\"k\",signature=\"SIG\""),
            ("X-Api-Key", "K-123"),
        ],
    );
    let shown = tyk::hook_json(&object).to_string();
    assert!(
        !shown.contains("SIG") && !shown.contains("K-123"),
        "{shown}"
    );
    assert!(
        shown.contains(r#""hook_type":"Pre""#) && shown.contains(PATH),
        "{shown}"
    );
    let event = tyk::event_json(r#"{"event":"AuthFailure","meta":{"Key":"abc","Path":"/x"}}"#);
    assert_eq!(
        event,
        serde_json::json!({"event": "AuthFailure", "meta": {"Key": "[redacted]", "Path": "/x"}})
    );
}

#[test]
fn logged_urls_leave_query_credentials_out() {
    let mut object = gateway_object(HookType::Post, "MyPostHook", &[]);
    let request = object.request.as_mut().unwrap();
    request.url = format!("{PATH}?access_token=TOK-123&x=1");
    request.request_uri = format!("{PATH}?api_key=K-456");
    let shown = tyk::hook_json(&object);
    assert_eq!(
        (&shown["request"]["url"], &shown["request"]["request_uri"]),
        (
            &serde_json::json!(format!("{PATH}?[redacted]")),
            &serde_json::json!(format!("{PATH}?[redacted]"))
        )
    );
}

#[test]
fn key_flags_split_after_base64_padding() {
    assert_eq!(
        flags::key_secret(&format!("{KEY}={SECRET}")).unwrap(),
        (KEY.to_owned(), SECRET.to_owned())
    );
    assert_eq!(
        flags::key_secret("svc=se=cret").unwrap(),
        ("svc".to_owned(), "se=cret".to_owned())
    );
    assert!(flags::key_secret("no-separator").is_err());
}
