use super::*;
use crate::clock::ManualClock;

const PATH: &str = "/helloworld.Greeter/SayHello";
const HANDSHAKE: &str = "/arrow.flight.protocol.FlightService/Handshake";

fn ctx(path: &str) -> CallContext<'_> {
    CallContext::for_path("https://g.example", path, true)
}

async fn sent(creds: &BasicLogin, path: &str) -> Result<HeaderMap, Status> {
    let mut md = HeaderMap::new();
    creds.apply(&ctx(path), &mut md).await.map(|()| md)
}

fn auth(md: &HeaderMap) -> &str {
    md[AUTHORIZATION].to_str().unwrap()
}

/// A JWT-shaped token with `exp` (the signature is not checked by the client).
fn jwt(exp: u64) -> String {
    let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"ada","exp":{exp}}}"#));
    format!("eyJhbGciOiJIUzI1NiJ9.{payload}.c2ln")
}

fn response(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, v.parse().unwrap());
    }
    h
}

fn respond(creds: &BasicLogin, path: &str, sent: &HeaderMap, res: Option<&HeaderMap>) {
    creds.on_response(&CallOutcome::new(ctx(path), sent, res));
}

const BASIC: &str = "Basic YWRhOmxvdmVsYWNl";

#[tokio::test]
async fn first_call_logs_in_and_concurrent_calls_wait_for_its_token() {
    let clock = ManualClock::at_unix(1_000_000);
    let creds = BasicLogin::new("ada", "lovelace").clock(clock.clone());
    let login = sent(&creds, PATH).await.unwrap();
    assert_eq!(auth(&login), BASIC);
    assert!(login[AUTHORIZATION].is_sensitive());
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let creds = creds.clone();
            tokio::spawn(async move { sent(&creds, PATH).await })
        })
        .collect();
    tokio::task::yield_now().await;
    let token = jwt(1_000_900);
    respond(
        &creds,
        PATH,
        &login,
        Some(&response(&[("authorization", &format!("bearer {token}"))])),
    );
    for w in waiters {
        let md = w.await.unwrap().unwrap();
        assert_eq!(auth(&md), format!("Bearer {token}"));
        assert!(md[AUTHORIZATION].is_sensitive());
    }
}

#[tokio::test]
async fn near_expiry_one_call_logs_in_while_the_others_keep_the_token() {
    let clock = ManualClock::at_unix(1_000_000);
    let creds = BasicLogin::new("ada", "lovelace").clock(clock.clone());
    let login = sent(&creds, PATH).await.unwrap();
    let old = jwt(1_000_900);
    respond(
        &creds,
        PATH,
        &login,
        Some(&response(&[("authorization", &format!("Bearer {old}"))])),
    );
    clock.advance(Duration::from_secs(839)); // 61 s left: fresh
    assert_eq!(
        auth(&sent(&creds, PATH).await.unwrap()),
        format!("Bearer {old}")
    );
    clock.advance(Duration::from_secs(1)); // 60 s left: renew
    let relogin = sent(&creds, PATH).await.unwrap();
    assert_eq!(auth(&relogin), BASIC);
    assert_eq!(
        auth(&sent(&creds, PATH).await.unwrap()),
        format!("Bearer {old}")
    );
    let new = jwt(1_001_741);
    respond(
        &creds,
        PATH,
        &relogin,
        Some(&response(&[("authorization", &format!("Bearer {new}"))])),
    );
    assert_eq!(
        auth(&sent(&creds, PATH).await.unwrap()),
        format!("Bearer {new}")
    );
}

#[tokio::test]
async fn a_jwt_lifetime_is_counted_from_its_arrival_on_the_client_clock() {
    // The client's clock is a day behind the server's: `exp` alone would look far off.
    let clock = ManualClock::at_unix(1_000_000 - 86_400);
    let creds = BasicLogin::new("ada", "lovelace").clock(clock.clone());
    let login = sent(&creds, PATH).await.unwrap();
    let payload = URL_SAFE_NO_PAD.encode(r#"{"iat":1000000,"exp":1000900}"#);
    let token = format!("h.{payload}.s");
    respond(
        &creds,
        PATH,
        &login,
        Some(&response(&[("authorization", &format!("Bearer {token}"))])),
    );
    clock.advance(Duration::from_secs(839));
    assert_eq!(
        auth(&sent(&creds, PATH).await.unwrap()),
        format!("Bearer {token}")
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        auth(&sent(&creds, PATH).await.unwrap()),
        BASIC,
        "60 s before its end"
    );
}

#[tokio::test]
async fn an_unauthenticated_answer_drops_the_token_once() {
    let creds = BasicLogin::new("ada", "lovelace");
    let login = sent(&creds, PATH).await.unwrap();
    respond(
        &creds,
        PATH,
        &login,
        Some(&response(&[("authorization", "Bearer opaque-1")])),
    );
    let with_token = sent(&creds, PATH).await.unwrap();
    let refused = response(&[("grpc-status", "16"), ("grpc-message", "token%20expired")]);
    respond(&creds, PATH, &with_token, Some(&refused));
    assert!(!creds.has_token());
    let relogin = sent(&creds, PATH).await.unwrap();
    assert_eq!(auth(&relogin), BASIC);
    respond(
        &creds,
        PATH,
        &relogin,
        Some(&response(&[("authorization", "Bearer opaque-2")])),
    );
    // A late refusal of the old token does not drop the new one.
    respond(&creds, PATH, &with_token, Some(&refused));
    assert_eq!(auth(&sent(&creds, PATH).await.unwrap()), "Bearer opaque-2");
}

#[tokio::test]
async fn a_refused_login_fails_calls_until_the_backoff_has_passed() {
    let clock = ManualClock::at_unix(1_000_000);
    let creds = BasicLogin::new("ada", "wrong").clock(clock.clone());
    let login = sent(&creds, PATH).await.unwrap();
    let waiter = {
        let creds = creds.clone();
        tokio::spawn(async move { sent(&creds, PATH).await })
    };
    tokio::task::yield_now().await;
    let refused = response(&[
        ("grpc-status", "16"),
        ("grpc-message", "invalid%20username%20or%20password"),
    ]);
    respond(&creds, PATH, &login, Some(&refused));
    let want = Status::unauthenticated("login failed: invalid username or password");
    let got = waiter.await.unwrap().unwrap_err();
    assert_eq!((got.code(), got.message()), (want.code(), want.message()));
    let got = sent(&creds, PATH).await.unwrap_err();
    assert_eq!(got.message(), want.message());
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        auth(&sent(&creds, PATH).await.unwrap()),
        auth(&login),
        "retried after 1 s"
    );
}

#[tokio::test]
async fn a_login_without_a_response_lets_the_next_call_log_in() {
    let creds = BasicLogin::new("ada", "lovelace");
    let login = sent(&creds, PATH).await.unwrap();
    let waiter = {
        let creds = creds.clone();
        tokio::spawn(async move { sent(&creds, PATH).await })
    };
    tokio::task::yield_now().await;
    respond(&creds, PATH, &login, None);
    assert_eq!(auth(&waiter.await.unwrap().unwrap()), BASIC);
}

#[tokio::test]
async fn with_a_login_method_only_its_calls_log_in() {
    let creds = BasicLogin::new("ada", "lovelace").login_method(HANDSHAKE);
    assert_eq!(
        sent(&creds, PATH).await.unwrap_err().message(),
        format!("not logged in: call {HANDSHAKE} first")
    );
    let login = sent(&creds, HANDSHAKE).await.unwrap();
    assert_eq!(auth(&login), BASIC);
    respond(
        &creds,
        HANDSHAKE,
        &login,
        Some(&response(&[("authorization", "Bearer t1")])),
    );
    assert_eq!(auth(&sent(&creds, PATH).await.unwrap()), "Bearer t1");
    assert_eq!(auth(&sent(&creds, HANDSHAKE).await.unwrap()), BASIC);
}

#[test]
fn bearer_is_read_case_insensitively() {
    let r = |v: &str| response(&[("authorization", v)]);
    assert_eq!(bearer_token(&r("Bearer abc")), Some("abc"));
    assert_eq!(bearer_token(&r("bEaReR  abc ")), Some("abc"));
    assert_eq!(bearer_token(&r("Basic abc")), None);
    assert_eq!(bearer_token(&r("Bearer ")), None);
    assert_eq!(bearer_token(&HeaderMap::new()), None);
    assert_eq!(jwt_times(&jwt(42)), Some((None, Some(42))));
    let with_iat = format!(
        "h.{}.s",
        URL_SAFE_NO_PAD.encode(r#"{"iat":100,"exp":1000.0}"#)
    );
    assert_eq!(jwt_times(&with_iat), Some((Some(100), Some(1000))));
    assert_eq!(jwt_times("opaque"), None);
}

#[test]
fn debug_hides_the_password() {
    let shown = format!("{:?}", BasicLogin::new("ada", "lovelace-SECRET"));
    assert!(
        !shown.contains("SECRET") && !shown.contains("YWRh"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_jwt_with_an_out_of_range_exp_does_not_panic() {
    // A server (or a man in the middle on a trusted mesh) can send any `exp`/`iat`:
    // one past what `SystemTime` holds must not panic the client.
    let clock = ManualClock::at_unix(1_000_000);
    let creds = BasicLogin::new("ada", "lovelace").clock(clock.clone());
    for payload in [
        format!(r#"{{"exp":{}}}"#, u64::MAX),
        format!(r#"{{"iat":0,"exp":{}}}"#, u64::MAX),
        r#"{"exp":1e300}"#.to_owned(),
    ] {
        let token = format!("h.{}.s", URL_SAFE_NO_PAD.encode(payload));
        let login = sent(&creds, PATH).await.unwrap();
        assert_eq!(auth(&login), BASIC);
        respond(
            &creds,
            PATH,
            &login,
            Some(&response(&[("authorization", &format!("Bearer {token}"))])),
        );
        // Beyond any representable time: the token never expires on the client.
        assert_eq!(
            auth(&sent(&creds, PATH).await.unwrap()),
            format!("Bearer {token}")
        );
        let refused = response(&[("grpc-status", "16")]);
        respond(
            &creds,
            PATH,
            &sent(&creds, PATH).await.unwrap(),
            Some(&refused),
        );
    }
}

#[tokio::test]
async fn a_login_whose_basic_was_replaced_on_the_call_does_not_strand_the_waiters() {
    let clock = ManualClock::at_unix(1_000_000);
    let creds = BasicLogin::new("ada", "lovelace").clock(clock.clone());
    let mut login = sent(&creds, PATH).await.unwrap();
    assert_eq!(auth(&login), BASIC);
    let waiter = {
        let creds = creds.clone();
        tokio::spawn(async move { sent(&creds, PATH).await })
    };
    tokio::task::yield_now().await;
    // Another credential on the same call overwrote `authorization` after BasicLogin.
    login.insert(AUTHORIZATION, "Bearer someone-elses".parse().unwrap());
    respond(&creds, PATH, &login, Some(&response(&[])));
    // The waiter is released and becomes the next login, not stuck behind the first.
    let md = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiting call was released")
        .unwrap()
        .unwrap();
    assert_eq!(auth(&md), BASIC);
}

#[tokio::test]
async fn a_cancelled_waiter_does_not_start_a_second_login() {
    // The reported defect: a waiting call dropped while the login ran reported "no
    // response, no authorization", which cleared the login in flight; the next call
    // then logged in a second time concurrently.
    let clock = ManualClock::at_unix(1_000_000);
    let creds = BasicLogin::new("ada", "lovelace").clock(clock.clone());
    let login_ctx = ctx(PATH).with_call_id(1);
    let mut login = HeaderMap::new();
    creds.apply(&login_ctx, &mut login).await.unwrap();
    assert_eq!(auth(&login), BASIC);

    // A second call (id 2) waits for the login; it is cancelled, and its observer
    // reports what it had sent: nothing.
    let waiter = {
        let creds = creds.clone();
        tokio::spawn(async move {
            let mut md = HeaderMap::new();
            creds
                .apply(&ctx(PATH).with_call_id(2), &mut md)
                .await
                .map(|()| md)
        })
    };
    tokio::task::yield_now().await;
    waiter.abort();
    assert!(waiter.await.unwrap_err().is_cancelled());
    creds.on_response(&CallOutcome::new(
        ctx(PATH).with_call_id(2),
        &HeaderMap::new(),
        None,
    ));

    // A third call still waits: no second login.
    let third = {
        let creds = creds.clone();
        tokio::spawn(async move {
            let mut md = HeaderMap::new();
            creds
                .apply(&ctx(PATH).with_call_id(3), &mut md)
                .await
                .map(|()| md)
        })
    };
    tokio::task::yield_now().await;
    assert!(
        !third.is_finished(),
        "the third call must wait for the login in flight"
    );
    let token = jwt(1_000_900);
    creds.on_response(&CallOutcome::new(
        login_ctx,
        &login,
        Some(&response(&[("authorization", &format!("Bearer {token}"))])),
    ));
    let md = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("released by the login")
        .unwrap()
        .unwrap();
    assert_eq!(auth(&md), format!("Bearer {token}"));
}

#[tokio::test]
async fn a_setter_on_a_clone_configures_that_clone() {
    // It was silently ignored once the credentials had been cloned (Arc::get_mut).
    let base = BasicLogin::new("ada", "lovelace");
    let keep = base.clone();
    let flight = base.clone().login_method(HANDSHAKE);
    // The clone with a login method refuses other calls until logged in...
    assert_eq!(
        sent(&flight, PATH).await.unwrap_err().message(),
        format!("not logged in: call {HANDSHAKE} first")
    );
    // ...while the original still logs in on any call.
    assert_eq!(auth(&sent(&keep, PATH).await.unwrap()), BASIC);
}
