//! HTTP Basic: `authorization` values, the base64 and `user:password` decoding and the
//! (plaintext) user lookup, through `Authenticator::authenticate`.
//!
//! First byte bit 0 clear: the rest is the raw `authorization` value. Set: the rest is
//! `user \0 password`, encoded here as `<scheme><sep><base64>` with the scheme
//! spelling, separator and base64 flavour (padded, unpadded, URL-safe) picked by the
//! other bits, so the known users are reached. Either way the outcome must be exactly
//! what the Basic rules give for that value (failure limits off).
//!
//! Then the failed-login limit, on a fresh authenticator (2 failures per user, manual
//! clock): a wrong password for a user is refused twice as wrong, then as limited,
//! and so is that user's right password, until the window has passed; right
//! passwords never count.
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
use grpc_auth::authn::{
    AuthRequest, AuthResult, Authenticator, Authorization, BasicAuthenticator, FailureLimits,
};
use grpc_auth::clock::ManualClock;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

const USERS: [(&str, &str); 4] = [
    ("ada", "lovelace"),
    ("bob", "pa:ss word"),
    ("\u{fc}n\u{ef}", "\u{e7}\u{f8}d\u{e9}"),
    ("carol", "c"),
];

struct Fixture {
    rt: tokio::runtime::Runtime,
    auth: BasicAuthenticator,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| Fixture {
        rt: tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap(),
        auth: users(BasicAuthenticator::new().no_failure_limits()),
    })
}

/// The documented default bound on a credential-bearing value (8 KiB).
const MAX_VALUE_LEN: usize = 8 * 1024;
const NOW: u64 = 1_700_000_000;
const WINDOW: u64 = 300;
const LIMITED: &str = "too many failed logins; retry later";

fn users(mut auth: BasicAuthenticator) -> BasicAuthenticator {
    for (u, p) in USERS {
        auth = auth.user(u, p);
    }
    auth.grant("ada", ["greeter.write"])
}

fn basic(user: &str, password: &str) -> HeaderValue {
    let v = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
    HeaderValue::from_str(&v).unwrap()
}

fn call(f: &Fixture, auth: &BasicAuthenticator, value: &HeaderValue) -> AuthResult {
    let mut headers = HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, value.clone());
    f.rt.block_on(auth.authenticate(&AuthRequest::new("/a.B/C", &headers)))
}

fn is_limited(r: &AuthResult) -> bool {
    matches!(r, Err(e) if e.to_string() == LIMITED)
}

/// The user and password a value carries, when it is well-formed Basic.
fn credentials(value: &HeaderValue) -> Option<(String, String)> {
    let a = Authorization::parse(value.to_str().ok()?).ok()?;
    if !a.is_scheme("Basic") || value.len() > MAX_VALUE_LEN {
        return None;
    }
    let text = String::from_utf8(STANDARD.decode(a.credentials()).ok()?).ok()?;
    let (u, p) = text.split_once(':')?;
    (!u.is_empty() && !p.is_empty()).then(|| (u.to_owned(), p.to_owned()))
}

/// The failure limit, on a fresh authenticator.
fn limits(f: &Fixture, value: &HeaderValue) {
    let Some((user, password)) = credentials(value) else {
        return;
    };
    let clock = ManualClock::at_unix(NOW);
    let auth = users(BasicAuthenticator::new())
        .failure_limits(FailureLimits::new().per_user(2).per_peer(0).capacity(8))
        .clock(clock.clone());
    let right = USERS.iter().find(|(u, _)| *u == user).map(|(_, p)| *p);
    if right == Some(password.as_str()) {
        for _ in 0..4 {
            assert!(
                matches!(call(f, &auth, value), Ok(Some(_))),
                "a right password refused"
            );
        }
        return;
    }
    for i in 0..2 {
        let r = call(f, &auth, value);
        assert!(r.is_err() && !is_limited(&r), "failure {i}: {r:?}");
    }
    assert!(
        is_limited(&call(f, &auth, value)),
        "third failure not limited"
    );
    if let Some(right) = right {
        let r = call(f, &auth, &basic(&user, right));
        assert!(is_limited(&r), "a limited user logged in: {r:?}");
    }
    clock.advance(std::time::Duration::from_secs(WINDOW));
    let r = call(f, &auth, value);
    assert!(r.is_err() && !is_limited(&r), "after the window: {r:?}");
    if let Some(right) = right {
        let r = call(f, &auth, &basic(&user, right));
        assert!(matches!(r, Ok(Some(_))), "after the window: {r:?}");
    }
}

/// The Basic rules: `Ok(None)` when there is no Basic credential, `Ok(Some(user))`
/// for a known user and their exact password, `Err` otherwise.
fn expected(value: &HeaderValue) -> Result<Option<&'static str>, ()> {
    let text = value.to_str().map_err(|_| ())?;
    if text.len() > MAX_VALUE_LEN {
        return Err(());
    }
    let a = Authorization::parse(text).map_err(|_| ())?;
    if !a.is_scheme("Basic") {
        return Ok(None);
    }
    let decoded = STANDARD.decode(a.credentials()).map_err(|_| ())?;
    let decoded = String::from_utf8(decoded).map_err(|_| ())?;
    let (user, password) = decoded.split_once(':').ok_or(())?;
    USERS
        .iter()
        .find(|(u, p)| *u == user && *p == password)
        .map(|(u, _)| Some(*u))
        .ok_or(())
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let value = if flags & 1 == 0 {
        rest.to_vec()
    } else {
        let (user, password) = match rest.iter().position(|&b| b == 0) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &b""[..]),
        };
        let mut plain = user.to_vec();
        plain.push(b':');
        plain.extend_from_slice(password);
        let encoded = match (flags >> 1) & 3 {
            0 | 1 => STANDARD.encode(&plain),
            2 => STANDARD_NO_PAD.encode(&plain),
            _ => URL_SAFE.encode(&plain),
        };
        let scheme = ["Basic", "basic", "BASIC", "Bearer"][usize::from((flags >> 3) & 3)];
        let sep = [" ", "\t", "  ", " \t "][usize::from((flags >> 5) & 3)];
        format!("{scheme}{sep}{encoded}").into_bytes()
    };
    let Ok(value) = HeaderValue::from_bytes(&value) else {
        return;
    };
    let got = call(f, &f.auth, &value);
    match (&got, expected(&value)) {
        (Ok(None), Ok(None)) | (Err(_), Err(())) => {}
        (Ok(Some(a)), Ok(Some(user))) => {
            let p = &a.principal;
            assert_eq!(p.subject(), user);
            assert_eq!(p.scheme(), "basic");
            assert_eq!(p.has_scope("greeter.write"), user == "ada");
        }
        (g, w) => panic!("authenticate gave {g:?}, the Basic rules {w:?}"),
    }
    if let Err(e) = &got {
        // Messages never echo the credential.
        let msg = e.to_string();
        if let Ok(text) = value.to_str()
            && let Ok(a) = Authorization::parse(text)
            && a.credentials().len() > 64
        {
            assert!(!msg.contains(a.credentials()), "{msg:?}");
        }
        for (_, password) in USERS {
            if password.len() > 3 {
                assert!(!msg.contains(password), "{msg:?}");
            }
        }
    }
    limits(f, &value);
});
