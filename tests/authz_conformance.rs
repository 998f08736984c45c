//! Conformance with the reference implementations of gRPC authorization policies
//! (gRFC A43): every grpc-go and grpc-java test case that gives a policy and a request
//! (method path, metadata, peer) with an expected OK or PERMISSION_DENIED, decided here
//! by [`AuthorizationPolicy::decide`]; and their invalid policies not already in
//! `src/authz/tests.rs` (refused by [`AuthorizationPolicy::from_json`]).
//!
//! Sources (policy documents copied as they are, only Go/Java string escaping undone):
//! - grpc-go `authz/grpc_authz_end2end_test.go` at 4793ad0474669eafbd5346c8a3d098fdfa542498;
//!   `authz/sdk_end2end_test.go` is its name before grpc-go#5191 (last at
//!   a354b1eec35081ebfc7673a7edf273a13a2bfaee) with the same cases, renamed only.
//! - grpc-java `authz/src/test/java/io/grpc/authz/AuthorizationEnd2EndTest.java` and
//!   `AuthorizationPolicyTranslatorTest.java` at 5fda0c7c35a938b2b0be05cdbe168dcb0700d64a.
//! - grpc-go `internal/xds/rbac/rbac_engine_test.go`,
//!   `TestAuthenticatedMatcherIdentitySourcePrecedence` (grpc-go#9111), for how a TLS
//!   peer's names are matched.
//!
//! Mapping: a plaintext (insecure) connection is [`Peer::Unauthenticated`]; TLS without a
//! client certificate `Peer::Authenticated(vec![])`; a client certificate
//! [`Peer::certificate`] (its URI SANs, else DNS SANs, else subject) or [`Peer::tls`]. The
//! reference clients' metadata becomes request headers, next to the headers a gRPC
//! request carries anyway (`content-type`, `te`, `user-agent`, `grpc-timeout`): a policy
//! cannot name `grpc-*`, `te` or pseudo-headers, so those never take part.
//!
//! Every case asserts the reference outcome. The three identity-precedence cases of
//! grpc-go's rbac engine (a certificate with URI SANs is not matched by its DNS SANs or
//! subject) failed at first and were fixed in `Peer::certificate`.

use grpc_auth::authz::{AuthorizationPolicy, Peer, SharedPolicy};
use http::HeaderMap;
use http::header::HeaderValue;

/// grpc-go's `grpc.testing.TestService` methods the end-to-end tests call.
const GO_UNARY_CALL: &str = "/grpc.testing.TestService/UnaryCall";
const GO_STREAMING_INPUT_CALL: &str = "/grpc.testing.TestService/StreamingInputCall";
/// grpc-java's `grpc.testing.SimpleService` method the end-to-end tests call.
const JAVA_UNARY_RPC: &str = "/grpc.testing.SimpleService/UnaryRpc";

fn policy(json: &str) -> AuthorizationPolicy {
    AuthorizationPolicy::from_json(json)
        .unwrap_or_else(|e| panic!("the reference accepts this policy: {e}\n{json}"))
}

fn assert_refused(json: &str) {
    if let Ok(p) = AuthorizationPolicy::from_json(json) {
        panic!("the reference refuses this policy, accepted as {p:?}:\n{json}");
    }
}

/// A gRPC request's headers with the caller's metadata `md`.
fn request(md: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/grpc"));
    h.insert("te", HeaderValue::from_static("trailers"));
    h.insert("user-agent", HeaderValue::from_static("grpc-go/1.0"));
    h.insert("grpc-timeout", HeaderValue::from_static("4999m"));
    for (k, v) in md {
        h.append(*k, HeaderValue::from_str(v).expect("a header value"));
    }
    h
}

fn allowed(p: &AuthorizationPolicy, path: &str, md: &[(&'static str, &str)], peer: &Peer) -> bool {
    p.decide(path, &request(md), peer).allowed
}

/// grpc-go's `TestStaticPolicyEnd2End` / `TestFileWatcherEnd2End` (and the `TestSDK...`
/// ones of `sdk_end2end_test.go`): a plaintext client calls `UnaryCall` and
/// `StreamingInputCall` with `md`; both get the same status.
fn go_table_case(json: &str, md: &[(&'static str, &str)], want_ok: bool) {
    let p = policy(json);
    for path in [GO_UNARY_CALL, GO_STREAMING_INPUT_CALL] {
        assert_eq!(
            allowed(&p, path, md, &Peer::Unauthenticated),
            want_ok,
            "{path} with {md:?}: want {}",
            if want_ok { "OK" } else { "PERMISSION_DENIED" }
        );
    }
}

/// grpc-java's end-to-end tests: a plaintext client calls `UnaryRpc` without metadata.
fn java_plaintext_case(json: &str, want_ok: bool) {
    let p = policy(json);
    assert_eq!(
        allowed(&p, JAVA_UNARY_RPC, &[], &Peer::Unauthenticated),
        want_ok,
        "want {}",
        if want_ok {
            "OK"
        } else {
            "PERMISSION_DENIED: Access Denied"
        }
    );
}

// ---------------------------------------------------------------------------------
// grpc-go authz/grpc_authz_end2end_test.go (= authz/sdk_end2end_test.go before #5191)
// ---------------------------------------------------------------------------------

/// grpc-go `authz/grpc_authz_end2end_test.go`, `authzTests["DeniesRPCMatchInDenyNoMatchInAllow"]` (run by
/// `TestStaticPolicyEnd2End` and `TestFileWatcherEnd2End`; `sdkTests` in
/// `sdk_end2end_test.go`): want PERMISSION_DENIED.
#[test]
fn grpc_go_denies_rpc_match_in_deny_no_match_in_allow() {
    go_table_case(
        r#"{
				"name": "authz",
				"allow_rules":
				[
					{
						"name": "allow_StreamingOutputCall",
						"request": {
							"paths":
							[
								"/grpc.testing.TestService/StreamingOutputCall"
							]
						}
					}
				],
				"deny_rules":
				[
					{
						"name": "deny_TestServiceCalls",
						"request": {
							"paths":
							[
								"/grpc.testing.TestService/*"
							],
							"headers":
							[
								{
									"key": "key-abc",
									"values":
									[
										"val-abc",
										"val-def"
									]
								}
							]
						}
					}
				]
			}"#,
        &[("key-abc", "val-abc")],
        false,
    );
}

/// grpc-go `authz/grpc_authz_end2end_test.go`, `authzTests["DeniesRPCMatchInDenyAndAllow"]` (run by
/// `TestStaticPolicyEnd2End` and `TestFileWatcherEnd2End`; `sdkTests` in
/// `sdk_end2end_test.go`): want PERMISSION_DENIED.
#[test]
fn grpc_go_denies_rpc_match_in_deny_and_allow() {
    go_table_case(
        r#"{
				"name": "authz",
				"allow_rules":
				[
					{
						"name": "allow_all",
						"request": {
							"paths":
							[
								"*"
							]
						}
					}
				],
				"deny_rules":
				[
					{
						"name": "deny_all",
						"request": {
							"paths":
							[
								"*"
							]
						}
					}
				]
			}"#,
        &[],
        false,
    );
}

/// grpc-go `authz/grpc_authz_end2end_test.go`, `authzTests["AllowsRPCNoMatchInDenyMatchInAllow"]` (run by
/// `TestStaticPolicyEnd2End` and `TestFileWatcherEnd2End`; `sdkTests` in
/// `sdk_end2end_test.go`): want OK.
#[test]
fn grpc_go_allows_rpc_no_match_in_deny_match_in_allow() {
    go_table_case(
        r#"{
				"name": "authz",
				"allow_rules":
				[
					{
						"name": "allow_all"
					}
				],
				"deny_rules":
				[
					{
						"name": "deny_TestServiceCalls",
						"request": {
							"paths":
							[
								"/grpc.testing.TestService/UnaryCall",
								"/grpc.testing.TestService/StreamingInputCall"
							],
							"headers":
							[
								{
									"key": "key-abc",
									"values":
									[
										"val-abc",
										"val-def"
									]
								}
							]
						}
					}
				]
			}"#,
        &[("key-xyz", "val-xyz")],
        true,
    );
}

/// grpc-go `authz/grpc_authz_end2end_test.go`, `authzTests["DeniesRPCNoMatchInDenyAndAllow"]` (run by
/// `TestStaticPolicyEnd2End` and `TestFileWatcherEnd2End`; `sdkTests` in
/// `sdk_end2end_test.go`): want PERMISSION_DENIED.
#[test]
fn grpc_go_denies_rpc_no_match_in_deny_and_allow() {
    go_table_case(
        r#"{
				"name": "authz",
				"allow_rules":
				[
					{
						"name": "allow_some_user",
						"source": {
							"principals":
							[
								"some_user"
							]
						}
					}
				],
				"deny_rules":
				[
					{
						"name": "deny_StreamingOutputCall",
						"request": {
							"paths":
							[
								"/grpc.testing.TestService/StreamingOutputCall"
							]
						}
					}
				]
			}"#,
        &[],
        false,
    );
}

/// grpc-go `authz/grpc_authz_end2end_test.go`, `authzTests["AllowsRPCEmptyDenyMatchInAllow"]` (run by
/// `TestStaticPolicyEnd2End` and `TestFileWatcherEnd2End`; `sdkTests` in
/// `sdk_end2end_test.go`): want OK.
#[test]
fn grpc_go_allows_rpc_empty_deny_match_in_allow() {
    go_table_case(
        r#"{
				"name": "authz",
				"allow_rules":
				[
					{
						"name": "allow_UnaryCall",
						"request":
						{
							"paths":
							[
								"/grpc.testing.TestService/UnaryCall"
							]
						}
					},
					{
						"name": "allow_StreamingInputCall",
						"request":
						{
							"paths":
							[
								"/grpc.testing.TestService/StreamingInputCall"
							]
						}
					}
				]
			}"#,
        &[],
        true,
    );
}

/// grpc-go `authz/grpc_authz_end2end_test.go`, `authzTests["DeniesRPCEmptyDenyNoMatchInAllow"]` (run by
/// `TestStaticPolicyEnd2End` and `TestFileWatcherEnd2End`; `sdkTests` in
/// `sdk_end2end_test.go`): want PERMISSION_DENIED.
#[test]
fn grpc_go_denies_rpc_empty_deny_no_match_in_allow() {
    go_table_case(
        r#"{
				"name": "authz",
				"allow_rules":
				[
					{
						"name": "allow_StreamingOutputCall",
						"request":
						{
							"paths":
							[
								"/grpc.testing.TestService/StreamingOutputCall"
							]
						}
					}
				]
			}"#,
        &[],
        false,
    );
}

/// grpc-go `authz/grpc_authz_end2end_test.go`, `authzTests["DeniesRPCRequestWithPrincipalsFieldOnUnauthenticatedConnection"]` (run by
/// `TestStaticPolicyEnd2End` and `TestFileWatcherEnd2End`; `sdkTests` in
/// `sdk_end2end_test.go`): want PERMISSION_DENIED.
#[test]
fn grpc_go_denies_rpc_request_with_principals_field_on_unauthenticated_connection() {
    go_table_case(
        r#"{
				"name": "authz",
				"allow_rules":
				[
					{
						"name": "allow_authenticated",
						"source": {
							"principals": ["*", ""]
						}
					}
				]
			}"#,
        &[],
        false,
    );
}

/// grpc-go `authz/grpc_authz_end2end_test.go`, `authzTests["DeniesRPCRequestNoMatchInAllowFailsPresenceMatch"]` (run by
/// `TestStaticPolicyEnd2End` and `TestFileWatcherEnd2End`; `sdkTests` in
/// `sdk_end2end_test.go`): want PERMISSION_DENIED.
#[test]
fn grpc_go_denies_rpc_request_no_match_in_allow_fails_presence_match() {
    go_table_case(
        r#"{
				"name": "authz",
				"allow_rules":
				[
					{
						"name": "allow_TestServiceCalls",
						"request": {
							"paths":
							[
								"/grpc.testing.TestService/*"
							],
							"headers":
							[
								{
									"key": "key-abc",
									"values":
									[
										"*"
									]
								}
							]
						}
					}
				]
			}"#,
        &[("key-abc", "")],
        false,
    );
}

/// grpc-go `authz/grpc_authz_end2end_test.go`,
/// `TestAllowsRPCRequestWithPrincipalsFieldOnTLSAuthenticatedConnection` (`TestSDK...` in
/// `sdk_end2end_test.go`): server-only TLS, the client sends no certificate; `UnaryCall`
/// is OK (`""` matches).
#[test]
fn grpc_go_allows_rpc_request_with_principals_field_on_tls_authenticated_connection() {
    let p = policy(
        r#"{
				"name": "authz",
				"allow_rules":
				[
					{
						"name": "allow_authenticated",
						"source": {
							"principals": ["*", ""]
						}
					}
				]
			}"#,
    );
    assert!(allowed(
        &p,
        GO_UNARY_CALL,
        &[],
        &Peer::Authenticated(vec![])
    ));
}

/// grpc-go `authz/grpc_authz_end2end_test.go`,
/// `TestAllowsRPCRequestWithPrincipalsFieldOnMTLSAuthenticatedConnection` (`TestSDK...`
/// in `sdk_end2end_test.go`): mutual TLS with `testdata/x509/client1_cert.pem`, which has
/// no SAN: its name is its subject (Go's `pkix.Name.String()`); `UnaryCall` is OK.
#[test]
fn grpc_go_allows_rpc_request_with_principals_field_on_mtls_authenticated_connection() {
    let p = policy(
        r#"{
				"name": "authz",
				"allow_rules":
				[
					{
						"name": "allow_authenticated",
						"source": {
							"principals": ["*", ""]
						}
					}
				]
			}"#,
    );
    let peer = Peer::tls(["CN=test-client1,O=gRPC,L=SVL,ST=CA,C=US"]);
    assert!(allowed(&p, GO_UNARY_CALL, &[], &peer));
}

/// A file watcher's reload as the layer sees it: the policy replaced when the new
/// document is valid, kept when it is not.
fn reload(shared: &SharedPolicy, json: &str) {
    if let Ok(p) = AuthorizationPolicy::from_json(json) {
        shared.replace(p);
    }
}

fn shared_allows(shared: &SharedPolicy, path: &str) -> bool {
    allowed(&shared.current(), path, &[], &Peer::Unauthenticated)
}

/// grpc-go `authz/grpc_authz_end2end_test.go`, `TestFileWatcher_ValidPolicyRefresh`
/// (`TestSDKFileWatcher_...` in `sdk_end2end_test.go`): `DeniesRPCMatchInDenyAndAllow`
/// denies `UnaryCall`, then after rewriting the file with
/// `AllowsRPCEmptyDenyMatchInAllow` it is OK. The file watching itself is not exercised
/// here, only the decisions of the two policies.
#[test]
fn grpc_go_file_watcher_valid_policy_refresh() {
    let shared = SharedPolicy::new(policy(
        r#"{
				"name": "authz",
				"allow_rules":
				[
					{
						"name": "allow_all",
						"request": {
							"paths":
							[
								"*"
							]
						}
					}
				],
				"deny_rules":
				[
					{
						"name": "deny_all",
						"request": {
							"paths":
							[
								"*"
							]
						}
					}
				]
			}"#,
    ));
    assert!(!shared_allows(&shared, GO_UNARY_CALL));
    reload(
        &shared,
        r#"{
				"name": "authz",
				"allow_rules":
				[
					{
						"name": "allow_UnaryCall",
						"request":
						{
							"paths":
							[
								"/grpc.testing.TestService/UnaryCall"
							]
						}
					},
					{
						"name": "allow_StreamingInputCall",
						"request":
						{
							"paths":
							[
								"/grpc.testing.TestService/StreamingInputCall"
							]
						}
					}
				]
			}"#,
    );
    assert!(shared_allows(&shared, GO_UNARY_CALL));
}

/// grpc-go `authz/grpc_authz_end2end_test.go`, `TestFileWatcher_InvalidPolicySkipReload`
/// (`TestSDKFileWatcher_...` in `sdk_end2end_test.go`): the file rewritten with `{}`,
/// which is refused, `DeniesRPCMatchInDenyAndAllow` stays and still denies.
#[test]
fn grpc_go_file_watcher_invalid_policy_skip_reload() {
    let shared = SharedPolicy::new(policy(
        r#"{
				"name": "authz",
				"allow_rules":
				[
					{
						"name": "allow_all",
						"request": {
							"paths":
							[
								"*"
							]
						}
					}
				],
				"deny_rules":
				[
					{
						"name": "deny_all",
						"request": {
							"paths":
							[
								"*"
							]
						}
					}
				]
			}"#,
    ));
    assert!(!shared_allows(&shared, GO_UNARY_CALL));
    assert_refused("{}");
    reload(&shared, "{}");
    assert!(!shared_allows(&shared, GO_UNARY_CALL));
}

/// grpc-go `authz/grpc_authz_end2end_test.go`, `TestFileWatcher_RecoversFromReloadFailure`
/// (`TestSDKFileWatcher_...` in `sdk_end2end_test.go`): denied; `{}` refused, still
/// denied; rewritten with `AllowsRPCEmptyDenyMatchInAllow`, OK.
#[test]
fn grpc_go_file_watcher_recovers_from_reload_failure() {
    let shared = SharedPolicy::new(policy(
        r#"{
				"name": "authz",
				"allow_rules":
				[
					{
						"name": "allow_all",
						"request": {
							"paths":
							[
								"*"
							]
						}
					}
				],
				"deny_rules":
				[
					{
						"name": "deny_all",
						"request": {
							"paths":
							[
								"*"
							]
						}
					}
				]
			}"#,
    ));
    assert!(!shared_allows(&shared, GO_UNARY_CALL));
    assert_refused("{}");
    reload(&shared, "{}");
    assert!(!shared_allows(&shared, GO_UNARY_CALL));
    reload(
        &shared,
        r#"{
				"name": "authz",
				"allow_rules":
				[
					{
						"name": "allow_UnaryCall",
						"request":
						{
							"paths":
							[
								"/grpc.testing.TestService/UnaryCall"
							]
						}
					},
					{
						"name": "allow_StreamingInputCall",
						"request":
						{
							"paths":
							[
								"/grpc.testing.TestService/StreamingInputCall"
							]
						}
					}
				]
			}"#,
    );
    assert!(shared_allows(&shared, GO_UNARY_CALL));
}

// ---------------------------------------------------------------------------------
// grpc-java authz/src/test/java/io/grpc/authz/AuthorizationEnd2EndTest.java
// ---------------------------------------------------------------------------------

/// grpc-java `AuthorizationEnd2EndTest.java`, `staticAuthzAllowsRpcNoMatchInDenyMatchInAllowTest`: a plaintext `UnaryRpc`
/// without metadata is OK.
#[test]
fn grpc_java_static_authz_allows_rpc_no_match_in_deny_match_in_allow_test() {
    java_plaintext_case(
        r#"{ "name" : "authz" , "deny_rules": [   {     "name": "deny_UnaryRpc",     "request": {       "paths": [         "*/UnaryRpc"       ],       "headers": [         {           "key": "dev-path",           "values": ["/dev/path/*"]         }       ]     }   } ], "allow_rules": [   {     "name": "allow_all"   } ]}"#,
        true,
    );
}

/// grpc-java `AuthorizationEnd2EndTest.java`, `staticAuthzDeniesRpcNoMatchInDenyAndAllowTest`: a plaintext `UnaryRpc`
/// without metadata is PERMISSION_DENIED.
#[test]
fn grpc_java_static_authz_denies_rpc_no_match_in_deny_and_allow_test() {
    java_plaintext_case(
        r#"{ "name" : "authz" , "deny_rules": [   {     "name": "deny_foo",     "source": {       "principals": [         "foo"       ]     }   } ], "allow_rules": [   {     "name": "allow_ClientStreamingRpc",     "request": {       "paths": [         "*/ClientStreamingRpc"       ]     }   } ]}"#,
        false,
    );
}

/// grpc-java `AuthorizationEnd2EndTest.java`, `staticAuthzDeniesRpcMatchInDenyAndAllowTest`: a plaintext `UnaryRpc`
/// without metadata is PERMISSION_DENIED.
#[test]
fn grpc_java_static_authz_denies_rpc_match_in_deny_and_allow_test() {
    java_plaintext_case(
        r#"{ "name" : "authz" , "deny_rules": [   {     "name": "deny_UnaryRpc",     "request": {       "paths": [         "*/UnaryRpc"       ]     }   } ], "allow_rules": [   {     "name": "allow_UnaryRpc",     "request": {       "paths": [         "*/UnaryRpc"       ]     }   } ]}"#,
        false,
    );
}

/// grpc-java `AuthorizationEnd2EndTest.java`, `staticAuthzDeniesRpcMatchInDenyNoMatchInAllowTest`: a plaintext `UnaryRpc`
/// without metadata is PERMISSION_DENIED.
#[test]
fn grpc_java_static_authz_denies_rpc_match_in_deny_no_match_in_allow_test() {
    java_plaintext_case(
        r#"{ "name" : "authz" , "deny_rules": [   {     "name": "deny_UnaryRpc",     "request": {       "paths": [         "*/UnaryRpc"       ]     }   } ], "allow_rules": [   {     "name": "allow_ClientStreamingRpc",     "request": {       "paths": [         "*/ClientStreamingRpc"       ]     }   } ]}"#,
        false,
    );
}

/// grpc-java `AuthorizationEnd2EndTest.java`, `staticAuthzAllowsRpcEmptyDenyMatchInAllowTest`: a plaintext `UnaryRpc`
/// without metadata is OK.
#[test]
fn grpc_java_static_authz_allows_rpc_empty_deny_match_in_allow_test() {
    java_plaintext_case(
        r#"{ "name" : "authz" , "allow_rules": [   {     "name": "allow_UnaryRpc",     "request": {       "paths": [         "*/UnaryRpc"       ]     }   } ]}"#,
        true,
    );
}

/// grpc-java `AuthorizationEnd2EndTest.java`, `staticAuthzDeniesRpcEmptyDenyNoMatchInAllowTest`: a plaintext `UnaryRpc`
/// without metadata is PERMISSION_DENIED.
#[test]
fn grpc_java_static_authz_denies_rpc_empty_deny_no_match_in_allow_test() {
    java_plaintext_case(
        r#"{ "name" : "authz" , "allow_rules": [   {     "name": "allow_ClientStreamingRpc",     "request": {       "paths": [         "*/ClientStreamingRpc"       ]     }   } ]}"#,
        false,
    );
}

/// grpc-java `AuthorizationEnd2EndTest.java`, `staticAuthzDeniesRpcWithPrincipalsFieldOnUnauthenticatedConnectionTest`: a plaintext `UnaryRpc`
/// without metadata is PERMISSION_DENIED.
#[test]
fn grpc_java_static_authz_denies_rpc_with_principals_field_on_unauthenticated_connection_test() {
    java_plaintext_case(
        r#"{ "name" : "authz" , "allow_rules": [   {     "name": "allow_authenticated",     "source": {       "principals": ["*", ""]     }   } ]}"#,
        false,
    );
}

/// grpc-java `AuthorizationEnd2EndTest.java`, `fileWatcherAuthzAllowsRpcNoMatchInDenyMatchInAllowTest` (the policy from a watched file): a plaintext `UnaryRpc`
/// without metadata is OK.
#[test]
fn grpc_java_file_watcher_authz_allows_rpc_no_match_in_deny_match_in_allow_test() {
    java_plaintext_case(
        r#"{ "name" : "authz" , "deny_rules": [   {     "name": "deny_UnaryRpc",     "request": {       "paths": [         "*/UnaryRpc"       ],       "headers": [         {           "key": "dev-path",           "values": ["/dev/path/*"]         }       ]     }   } ], "allow_rules": [   {     "name": "allow_all"   } ]}"#,
        true,
    );
}

/// grpc-java `AuthorizationEnd2EndTest.java`, `fileWatcherAuthzDeniesRpcNoMatchInDenyAndAllowTest` (the policy from a watched file): a plaintext `UnaryRpc`
/// without metadata is PERMISSION_DENIED.
#[test]
fn grpc_java_file_watcher_authz_denies_rpc_no_match_in_deny_and_allow_test() {
    java_plaintext_case(
        r#"{ "name" : "authz" , "deny_rules": [   {     "name": "deny_foo",     "source": {       "principals": [         "foo"       ]     }   } ], "allow_rules": [   {     "name": "allow_ClientStreamingRpc",     "request": {       "paths": [         "*/ClientStreamingRpc"       ]     }   } ]}"#,
        false,
    );
}

/// grpc-java `AuthorizationEnd2EndTest.java`, `fileWatcherAuthzDeniesRpcMatchInDenyAndAllowTest` (the policy from a watched file): a plaintext `UnaryRpc`
/// without metadata is PERMISSION_DENIED.
#[test]
fn grpc_java_file_watcher_authz_denies_rpc_match_in_deny_and_allow_test() {
    java_plaintext_case(
        r#"{ "name" : "authz" , "deny_rules": [   {     "name": "deny_UnaryRpc",     "request": {       "paths": [         "*/UnaryRpc"       ]     }   } ], "allow_rules": [   {     "name": "allow_UnaryRpc",     "request": {       "paths": [         "*/UnaryRpc"       ]     }   } ]}"#,
        false,
    );
}

/// grpc-java `AuthorizationEnd2EndTest.java`, `fileWatcherAuthzDeniesRpcMatchInDenyNoMatchInAllowTest` (the policy from a watched file): a plaintext `UnaryRpc`
/// without metadata is PERMISSION_DENIED.
#[test]
fn grpc_java_file_watcher_authz_denies_rpc_match_in_deny_no_match_in_allow_test() {
    java_plaintext_case(
        r#"{ "name" : "authz" , "deny_rules": [   {     "name": "deny_UnaryRpc",     "request": {       "paths": [         "*/UnaryRpc"       ]     }   } ], "allow_rules": [   {     "name": "allow_ClientStreamingRpc",     "request": {       "paths": [         "*/ClientStreamingRpc"       ]     }   } ]}"#,
        false,
    );
}

/// grpc-java `AuthorizationEnd2EndTest.java`, `fileWatcherAuthzAllowsRpcEmptyDenyMatchInAllowTest` (the policy from a watched file): a plaintext `UnaryRpc`
/// without metadata is OK.
#[test]
fn grpc_java_file_watcher_authz_allows_rpc_empty_deny_match_in_allow_test() {
    java_plaintext_case(
        r#"{ "name" : "authz" , "allow_rules": [   {     "name": "allow_UnaryRpc",     "request": {       "paths": [         "*/UnaryRpc"       ]     }   } ]}"#,
        true,
    );
}

/// grpc-java `AuthorizationEnd2EndTest.java`, `fileWatcherAuthzDeniesRpcEmptyDenyNoMatchInAllowTest` (the policy from a watched file): a plaintext `UnaryRpc`
/// without metadata is PERMISSION_DENIED.
#[test]
fn grpc_java_file_watcher_authz_denies_rpc_empty_deny_no_match_in_allow_test() {
    java_plaintext_case(
        r#"{ "name" : "authz" , "allow_rules": [   {     "name": "allow_ClientStreamingRpc",     "request": {       "paths": [         "*/ClientStreamingRpc"       ]     }   } ]}"#,
        false,
    );
}

/// grpc-java `AuthorizationEnd2EndTest.java`,
/// `staticAuthzAllowsRpcWithPrincipalsFieldOnMtlsAuthenticatedConnectionTest`: mutual TLS
/// with `testing/src/main/resources/certs/client.pem`, which has no SAN: its name is its
/// subject (`X500Principal.getName()`, RFC 2253); `UnaryRpc` is OK.
#[test]
fn grpc_java_static_authz_allows_rpc_with_principals_field_on_mtls_authenticated_connection_test() {
    let p = policy(
        r#"{ "name" : "authz" , "allow_rules": [   {     "name": "allow_mtls",     "source": {       "principals": ["*"]     }   } ]}"#,
    );
    let peer = Peer::tls(["CN=testclient,O=Internet Widgits Pty Ltd,ST=Some-State,C=AU"]);
    assert!(allowed(&p, JAVA_UNARY_RPC, &[], &peer));
}

/// grpc-java `AuthorizationEnd2EndTest.java`,
/// `staticAuthzAllowsRpcWithPrincipalsFieldOnTlsAuthenticatedConnectionTest`: TLS with
/// optional client authentication, the client sends no certificate (grpc-java names the
/// peer `""`); `UnaryRpc` is OK.
#[test]
fn grpc_java_static_authz_allows_rpc_with_principals_field_on_tls_authenticated_connection_test() {
    let p = policy(
        r#"{ "name" : "authz" , "allow_rules": [   {     "name": "allow_tls",     "source": {       "principals": [""]     }   } ]}"#,
    );
    assert!(allowed(
        &p,
        JAVA_UNARY_RPC,
        &[],
        &Peer::Authenticated(vec![])
    ));
}

/// grpc-java `AuthorizationEnd2EndTest.java`, `fileWatcherAuthzValidPolicyRefreshTest`:
/// `policy1` denies `UnaryRpc`; after the reload `policy2` allows it.
#[test]
fn grpc_java_file_watcher_authz_valid_policy_refresh_test() {
    let shared = SharedPolicy::new(policy(
        r#"{ "name" : "authz" , "deny_rules": [   {     "name": "deny_UnaryRpc",     "request": {       "paths": [         "*/UnaryRpc"       ]     }   } ], "allow_rules": [   {     "name": "allow_all"   } ]}"#,
    ));
    assert!(!shared_allows(&shared, JAVA_UNARY_RPC));
    reload(
        &shared,
        r#"{ "name" : "authz" , "allow_rules": [   {     "name": "allow_UnaryRpc",     "request": {       "paths": [         "*/UnaryRpc"       ]     }   } ]}"#,
    );
    assert!(shared_allows(&shared, JAVA_UNARY_RPC));
}

/// grpc-java `AuthorizationEnd2EndTest.java`, `fileWatcherAuthzInvalidPolicySkipRefreshTest`:
/// `validPolicy` denies `UnaryRpc`; `invalidPolicy` (`{}`) is refused and skipped, still
/// denied.
#[test]
fn grpc_java_file_watcher_authz_invalid_policy_skip_refresh_test() {
    let shared = SharedPolicy::new(policy(
        r#"{ "name" : "authz" , "allow_rules": [   {     "name": "allow_ClientStreamingRpc",     "request": {       "paths": [         "*/ClientStreamingRpc"       ]     }   } ]}"#,
    ));
    assert!(!shared_allows(&shared, JAVA_UNARY_RPC));
    assert_refused(r#"{}"#);
    reload(&shared, r#"{}"#);
    assert!(!shared_allows(&shared, JAVA_UNARY_RPC));
}

/// grpc-java `AuthorizationEnd2EndTest.java`, `fileWatcherAuthzRecoversFromReloadTest`:
/// `validPolicy1` denies; `invalidPolicy` skipped, still denied; `validPolicy2` allows.
#[test]
fn grpc_java_file_watcher_authz_recovers_from_reload_test() {
    let shared = SharedPolicy::new(policy(
        r#"{ "name" : "authz" , "allow_rules": [   {     "name": "allow_ClientStreamingRpc",     "request": {       "paths": [         "*/ClientStreamingRpc"       ]     }   } ]}"#,
    ));
    assert!(!shared_allows(&shared, JAVA_UNARY_RPC));
    assert_refused(r#"{}"#);
    reload(&shared, r#"{}"#);
    assert!(!shared_allows(&shared, JAVA_UNARY_RPC));
    reload(
        &shared,
        r#"{ "name" : "authz" , "allow_rules": [   {     "name": "allow_UnaryRpc",     "request": {       "paths": [         "*/UnaryRpc"       ]     }   } ]}"#,
    );
    assert!(shared_allows(&shared, JAVA_UNARY_RPC));
}

// ---------------------------------------------------------------------------------
// grpc-java authz/src/test/java/io/grpc/authz/AuthorizationPolicyTranslatorTest.java
// Invalid policies (`missingAuthorizationPolicyName`, `{}`, is already in
// src/authz/tests.rs). The valid ones give no request: probes below derive requests
// from the RBAC policies the test expects.
// ---------------------------------------------------------------------------------

/// grpc-java `AuthorizationPolicyTranslatorTest.java`, `invalidPolicy`: refused (malformed JSON).
#[test]
fn grpc_java_translator_invalid_policy() {
    assert_refused(r#"{ "name": "abc",, }"#);
}

/// grpc-java `AuthorizationPolicyTranslatorTest.java`, `incorrectAuthorizationPolicyName`: refused ("name" is not a string).
#[test]
fn grpc_java_translator_incorrect_authorization_policy_name() {
    assert_refused(r#"{ "name": ["abc"] }"#);
}

/// grpc-java `AuthorizationPolicyTranslatorTest.java`, `missingAllowRules`: refused ("allow_rules" is absent).
#[test]
fn grpc_java_translator_missing_allow_rules() {
    assert_refused(r#"{ "name": "authz" }"#);
}

/// grpc-java `AuthorizationPolicyTranslatorTest.java`, `missingRuleName`: refused (rule "name" is absent or empty).
#[test]
fn grpc_java_translator_missing_rule_name() {
    assert_refused(r#"{ "name" : "abc" , "allow_rules" : [   {} ]}"#);
}

/// grpc-java `AuthorizationPolicyTranslatorTest.java`, `incorrectRulesType`: refused ("allow_rules" is an object, not a list).
#[test]
fn grpc_java_translator_incorrect_rules_type() {
    assert_refused(r#"{ "name" : "abc" , "allow_rules" : {}}"#);
}

/// grpc-java `AuthorizationPolicyTranslatorTest.java`, `unsupportedPseudoHeaders`: refused (Unsupported "key" :method).
#[test]
fn grpc_java_translator_unsupported_pseudo_headers() {
    assert_refused(
        r#"{ "name" : "authz" , "allow_rules": [   {     "name": "allow_access",     "request": {       "headers": [         {           "key": ":method",           "values": [             "foo"           ]         }       ]     }   } ]}"#,
    );
}

/// grpc-java `AuthorizationPolicyTranslatorTest.java`, `unsupportedGrpcPrefixHeaders`: refused (Unsupported "key" grpc-xxx).
#[test]
fn grpc_java_translator_unsupported_grpc_prefix_headers() {
    assert_refused(
        r#"{ "name" : "authz" , "allow_rules": [   {     "name": "allow_access",     "request": {       "headers": [         {           "key": "grpc-xxx",           "values": [             "foo"           ]         }       ]     }   } ]}"#,
    );
}

/// grpc-java `AuthorizationPolicyTranslatorTest.java`, `unsupportedHostHeaders`: refused (Unsupported "key" Host).
#[test]
fn grpc_java_translator_unsupported_host_headers() {
    assert_refused(
        r#"{ "name" : "authz" , "allow_rules": [   {     "name": "allow_access",     "request": {       "headers": [         {           "key": "Host",           "values": [             "foo"           ]         }       ]     }   } ]}"#,
    );
}

/// grpc-java `AuthorizationPolicyTranslatorTest.java`, `missingHeaderKey`: refused ("key" is absent or empty).
#[test]
fn grpc_java_translator_missing_header_key() {
    assert_refused(
        r#"{ "name" : "authz" , "allow_rules": [   {     "name": "allow_dev",     "request": {       "headers": [         {}       ]     }   } ]}"#,
    );
}

/// grpc-java `AuthorizationPolicyTranslatorTest.java`, `missingHeaderValues`: refused ("values" is absent or empty).
#[test]
fn grpc_java_translator_missing_header_values() {
    assert_refused(
        r#"{ "name" : "authz" , "allow_rules": [   {     "name": "allow_dev",     "request": {       "headers": [         {           "key": "dev-path"         }       ]     }   } ]}"#,
    );
}

/// grpc-java `AuthorizationPolicyTranslatorTest.java`, `emptyHeaderValues`: refused ("values" is absent or empty).
#[test]
fn grpc_java_translator_empty_header_values() {
    assert_refused(
        r#"{ "name" : "authz" , "allow_rules": [   {     "name": "allow_dev",     "request": {       "headers": [         {           "key": "dev-path",           "values": []         }       ]     }   } ]}"#,
    );
}

/// grpc-java `AuthorizationPolicyTranslatorTest.java`, `missingSourceAndRequest`: expected
/// one ALLOW policy with any principal and any permission, so every call is allowed.
#[test]
fn grpc_java_translator_missing_source_and_request() {
    let p = policy(r#"{ "name" : "authz" , "allow_rules" : [   {     "name": "allow_all"   } ]}"#);
    assert!(allowed(&p, "/pkg.service/foo", &[], &Peer::Unauthenticated));
    assert!(allowed(
        &p,
        JAVA_UNARY_RPC,
        &[("k", "v")],
        &Peer::tls(["spiffe://x"])
    ));
}

/// grpc-java `AuthorizationPolicyTranslatorTest.java`, `emptySourceAndRequest`: `{}`
/// source and request translate to any principal and any permission, as if absent.
#[test]
fn grpc_java_translator_empty_source_and_request() {
    let p = policy(
        r#"{ "name" : "authz" , "allow_rules" : [   {     "name": "allow_all",     "source": {},     "request": {}   } ]}"#,
    );
    assert!(allowed(&p, "/pkg.service/foo", &[], &Peer::Unauthenticated));
    assert!(allowed(
        &p,
        JAVA_UNARY_RPC,
        &[],
        &Peer::Authenticated(vec![])
    ));
}

/// grpc-java `AuthorizationPolicyTranslatorTest.java`, `parseSourceSuccess`: deny
/// principals exact `spiffe://foo.com`, prefix `spiffe://bar`, suffix `baz`, exact
/// `spiffe://*.com`; allow any authenticated principal (regex `.+`).
#[test]
fn grpc_java_translator_parse_source_success() {
    let p = policy(
        r#"{ "name" : "authz" , "deny_rules": [   {     "name": "deny_users",     "source": {       "principals": [         "spiffe://foo.com",         "spiffe://bar*",         "*baz",         "spiffe://*.com"       ]     }   } ], "allow_rules": [   {     "name": "allow_any",     "source": {       "principals": [         "*"       ]     }   } ]}"#,
    );
    let path = "/pkg.service/foo";
    for denied in [
        "spiffe://foo.com",
        "spiffe://bar.example",
        "spiffe://x.baz",
        "spiffe://*.com",
    ] {
        assert!(!allowed(&p, path, &[], &Peer::tls([denied])), "{denied}");
    }
    for ok in [
        "spiffe://a.com",
        "spiffe://foo.comx",
        "spiffe://baz.example",
    ] {
        assert!(allowed(&p, path, &[], &Peer::tls([ok])), "{ok}");
    }
    // `.+` needs an authenticated, non-empty principal name.
    assert!(!allowed(&p, path, &[], &Peer::Unauthenticated));
    assert!(!allowed(&p, path, &[], &Peer::Authenticated(vec![])));
}

/// grpc-java `AuthorizationPolicyTranslatorTest.java`, `parseRequestSuccess`: deny paths
/// exact `/pkg.service/foo` or prefix `/pkg.service/bar` AND `dev-path` prefix
/// `/dev/path/`; allow `key-1` (exact `foo` or suffix `bar`) AND `key-2` (`.+`); allow
/// path suffix `baz`.
#[test]
fn grpc_java_translator_parse_request_success() {
    let p = policy(
        r#"{ "name" : "authz" , "deny_rules": [   {     "name": "deny_access",     "request": {       "paths": [         "/pkg.service/foo",         "/pkg.service/bar*"       ],       "headers": [         {           "key": "dev-path",           "values": ["/dev/path/*"]         }       ]     }   } ], "allow_rules": [   {     "name": "allow_access1",     "request": {       "headers": [         {           "key": "key-1",           "values": [             "foo",             "*bar"           ]         },         {           "key": "key-2",           "values": [             "*"           ]         }       ]     }   },   {     "name": "allow_access2",     "request": {       "paths": [         "*baz"       ]     }   } ]}"#,
    );
    let anyone = Peer::Unauthenticated;
    let keys: &[(&'static str, &str)] = &[("key-1", "foo"), ("key-2", "v")];
    assert!(
        allowed(&p, "/pkg.service/foo", keys, &anyone),
        "allow_access1"
    );
    assert!(
        allowed(&p, "/x/y", &[("key-1", "xbar"), ("key-2", "v")], &anyone),
        "allow_access1, suffix"
    );
    assert!(
        !allowed(
            &p,
            "/pkg.service/foo",
            &[
                ("key-1", "foo"),
                ("key-2", "v"),
                ("dev-path", "/dev/path/a")
            ],
            &anyone
        ),
        "deny_access, exact path"
    );
    assert!(
        !allowed(
            &p,
            "/pkg.service/barbaz",
            &[("key-1", "foo"), ("key-2", "v"), ("dev-path", "/dev/path/")],
            &anyone
        ),
        "deny_access, path prefix"
    );
    assert!(
        allowed(
            &p,
            "/pkg.service/foo",
            &[("key-1", "foo"), ("key-2", "v"), ("dev-path", "/dev/other")],
            &anyone
        ),
        "dev-path not under /dev/path/"
    );
    assert!(!allowed(
        &p,
        "/pkg.service/foo",
        &[("key-1", "food"), ("key-2", "v")],
        &anyone
    ));
    assert!(
        !allowed(
            &p,
            "/pkg.service/foo",
            &[("key-1", "foo"), ("key-2", "")],
            &anyone
        ),
        "`.+` on an empty value"
    );
    assert!(
        !allowed(&p, "/pkg.service/foo", &[("key-1", "foo")], &anyone),
        "key-2 absent"
    );
    assert!(
        allowed(&p, "/pkg.service/baz", &[], &anyone),
        "allow_access2"
    );
    assert!(!allowed(&p, "/pkg.service/qux", &[], &anyone), "no rule");
}

// ---------------------------------------------------------------------------------
// grpc-go internal/xds/rbac/rbac_engine_test.go,
// TestAuthenticatedMatcherIdentitySourcePrecedence (grpc-go#9111; grpc-java's
// GrpcAuthorizationEngine.getPrincipalNames does the same): only the first non-empty
// identity source of a certificate is matched: its URI SANs if it has any, else its
// DNS SANs, else its subject. The reference's matcher is `contains`, which A43 cannot
// say: the policy here is the suffix `*<value>`, equivalent for these names. The
// certificate's subject is only its CN (Go: `CN=<cn>`).
// ---------------------------------------------------------------------------------

fn precedence_case(uris: &[&str], dns: &[&str], subject_cn: &str, value: &str, want: bool) {
    let json = format!(
        r#"{{"name": "authz", "allow_rules": [{{"name": "r", "source": {{"principals": ["*{value}"]}}}}]}}"#
    );
    let p = policy(&json);
    let subject = if subject_cn.is_empty() {
        String::new()
    } else {
        format!("CN={subject_cn}")
    };
    let names = (uris, dns, subject.clone());
    let peer = Peer::certificate(
        uris.iter().map(|s| (*s).to_owned()).collect(),
        dns.iter().map(|s| (*s).to_owned()).collect(),
        &subject,
    );
    assert_eq!(
        allowed(&p, "/some/method", &[], &peer),
        want,
        "{names:?} against *{value}"
    );
}

/// grpc-go `internal/xds/rbac/rbac_engine_test.go`,
/// `TestAuthenticatedMatcherIdentitySourcePrecedence/uriSANPresentAndMatches`: want a match (OK).
#[test]
fn grpc_go_authenticated_matcher_uri_san_present_and_matches() {
    precedence_case(
        &["spiffe://corp.example/svc/legitimate"],
        &[],
        "",
        "spiffe://corp.example/svc/legitimate",
        true,
    );
}

/// grpc-go `internal/xds/rbac/rbac_engine_test.go`,
/// `TestAuthenticatedMatcherIdentitySourcePrecedence/uriSANPresentDoesNotFallbackToDNS`: want no match (PERMISSION_DENIED).
#[test]
fn grpc_go_authenticated_matcher_uri_san_present_does_not_fallback_to_dns() {
    precedence_case(
        &["spiffe://corp.example/svc/other"],
        &["spiffe://corp.example/svc/legitimate"],
        "",
        "spiffe://corp.example/svc/legitimate",
        false,
    );
}

/// grpc-go `internal/xds/rbac/rbac_engine_test.go`,
/// `TestAuthenticatedMatcherIdentitySourcePrecedence/uriSANPresentDoesNotFallbackToSubject`: want no match (PERMISSION_DENIED).
#[test]
fn grpc_go_authenticated_matcher_uri_san_present_does_not_fallback_to_subject() {
    precedence_case(
        &["spiffe://corp.example/svc/other"],
        &[],
        "spiffe://corp.example/svc/legitimate",
        "spiffe://corp.example/svc/legitimate",
        false,
    );
}

/// grpc-go `internal/xds/rbac/rbac_engine_test.go`,
/// `TestAuthenticatedMatcherIdentitySourcePrecedence/dnsSANPresentAndMatchesWhenNoURI`: want a match (OK).
#[test]
fn grpc_go_authenticated_matcher_dns_san_present_and_matches_when_no_uri() {
    precedence_case(
        &[],
        &["svc.legitimate.internal"],
        "",
        "svc.legitimate.internal",
        true,
    );
}

/// grpc-go `internal/xds/rbac/rbac_engine_test.go`,
/// `TestAuthenticatedMatcherIdentitySourcePrecedence/dnsSANPresentDoesNotFallbackToSubject`: want no match (PERMISSION_DENIED).
#[test]
fn grpc_go_authenticated_matcher_dns_san_present_does_not_fallback_to_subject() {
    precedence_case(
        &[],
        &["svc.other.internal"],
        "svc.legitimate.internal",
        "svc.legitimate.internal",
        false,
    );
}

/// grpc-go `internal/xds/rbac/rbac_engine_test.go`,
/// `TestAuthenticatedMatcherIdentitySourcePrecedence/subjectUsedWhenNoURINorDNS`: want a match (OK).
#[test]
fn grpc_go_authenticated_matcher_subject_used_when_no_uri_nor_dns() {
    precedence_case(
        &[],
        &[],
        "svc.legitimate.internal",
        "svc.legitimate.internal",
        true,
    );
}
