//! HMAC `Signature` requests: the parameter parser, the signature's encodings, the
//! signed-header list, the date window, the MAC and the replay cache.
//!
//! The first byte's bit 0 picks the half:
//! - clear: arbitrary `authorization`, `date`, `x-aux-date`, path and other metadata
//!   (one per line). Nothing here can carry a valid MAC, so nothing may verify.
//! - set: a request built and signed here (the spec's signing string, computed
//!   independently), with fuzzed key id, algorithm, signed-header list, metadata,
//!   date offset, method, path and signature encoding. Whether it verifies must match
//!   the documented rules exactly; an accepted signature must then be refused as a
//!   replay, also in its other encoding.
//!
//! Each input gets fresh verifiers on a `ManualClock`, so no state crosses inputs.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use grpc_auth::authn::hmac::{HmacAlgorithm, HmacError, HmacVerifier, StaticHmacKeys};
use grpc_auth::authn::{AuthRequest, Authenticator, HmacAuthenticator};
use grpc_auth::clock::ManualClock;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_700_000_000;
const SECRET1: &[u8] = b"hmac-fuzz-secret-one";
const SECRET2: &[u8] = b"hmac-fuzz-secret-two";
const WRONG: &[u8] = b"hmac-fuzz-wrong-secret";
const SKEW: u64 = 300;
const MAX_LEN_B: usize = 256;

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    })
}

/// Variant A: the defaults (SHA-256/384/512, `(request-target)` and `date` required,
/// 8 KiB values) with a small replay cache. Variant B: every algorithm, date-only
/// signatures allowed, 256-byte values, a two-entry replay cache.
fn verifier(b: bool) -> HmacVerifier {
    let v = HmacVerifier::new(StaticHmacKeys::new().key("k1", SECRET1).key("k2", SECRET2))
        .clock(ManualClock::at_unix(NOW));
    if b {
        v.algorithms(HmacAlgorithm::ALL)
            .allow_date_only()
            .max_value_len(MAX_LEN_B)
            .replay_cache_size(2)
    } else {
        v.replay_cache_size(8)
    }
}

fn mac(alg: HmacAlgorithm, key: &[u8], msg: &[u8]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key).unwrap();
        m.update(msg);
        m.finalize().into_bytes().to_vec()
    }
    match alg {
        HmacAlgorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, msg),
        HmacAlgorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, msg),
        HmacAlgorithm::Sha384 => run::<Hmac<sha2::Sha384>>(key, msg),
        HmacAlgorithm::Sha512 => run::<Hmac<sha2::Sha512>>(key, msg),
        // Non-exhaustive; the target picks only the four above.
        other => unreachable!("{other:?}"),
    }
}

/// `Tyk`/`quote_plus` URL encoding of base64 text.
fn url_encode(b64: &str, lower: bool) -> String {
    let (p, s, e) = if lower {
        ("%2b", "%2f", "%3d")
    } else {
        ("%2B", "%2F", "%3D")
    };
    b64.replace('+', p).replace('/', s).replace('=', e)
}

fn lines(data: &[u8]) -> Vec<&[u8]> {
    data.split(|&b| b == b'\n').collect()
}

/// Adds `name:value` lines as metadata (lines that are not valid metadata are skipped).
fn add_extra(headers: &mut HeaderMap, extra: &[&[u8]]) {
    for line in extra.iter().take(6) {
        let Some(i) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(&line[..i]),
            HeaderValue::from_bytes(&line[i + 1..]),
        ) {
            headers.append(n, v);
        }
    }
}

fn method(sel: u8) -> &'static str {
    ["POST", "post", "GeT", ""][usize::from(sel & 3)]
}

fn arbitrary(flags: u8, rest: &[u8]) {
    let l = lines(rest);
    let get = |i: usize| l.get(i).copied().filter(|v| !v.is_empty());
    let mut headers = HeaderMap::new();
    for (i, name) in [(0, "authorization"), (1, "date"), (2, "x-aux-date")] {
        if let Some(v) = get(i).and_then(|v| HeaderValue::from_bytes(v).ok()) {
            headers.append(name, v);
        }
    }
    let path = String::from_utf8_lossy(get(3).unwrap_or(b"/a.B/C"));
    add_extra(&mut headers, l.get(4..).unwrap_or(&[]));
    let v = verifier(flags & 2 != 0);
    let got = rt().block_on(v.verify(method(flags >> 2), &path, &headers));
    assert!(got.is_err(), "an unsigned request verified: {got:?}");
    let auth = HmacAuthenticator::new(v);
    let req = AuthRequest::new("/a.B/C", &headers);
    if let Ok(Some(a)) = rt().block_on(auth.authenticate(&req)) {
        panic!(
            "an unsigned request authenticated as {:?}",
            a.principal.subject()
        );
    }
}

/// Why the documented rules refuse the request, or `Ok(())`.
struct Oracle<'a> {
    headers: &'a HeaderMap,
    max_len: usize,
}

impl Oracle<'_> {
    fn single(&self, name: &str) -> Result<Option<&str>, &'static str> {
        let mut all = self.headers.get_all(name).iter();
        let Some(v) = all.next() else {
            return Ok(None);
        };
        if all.next().is_some() {
            return Err("repeated");
        }
        if v.len() > self.max_len {
            return Err("oversized");
        }
        v.to_str().map(Some).map_err(|_| "not ASCII")
    }
}

fn expected(
    o: &Oracle<'_>,
    b: bool,
    alg: HmacAlgorithm,
    key_known: bool,
    listed_param: &str,
) -> Result<(), &'static str> {
    o.single("authorization")?.ok_or("no authorization")?;
    if alg == HmacAlgorithm::Sha1 && !b {
        return Err("sha1 not allowed");
    }
    let mut listed: Vec<String> = Vec::new();
    for name in listed_param.split_ascii_whitespace() {
        if listed.len() == 32 {
            return Err("too many headers");
        }
        let name = name.to_ascii_lowercase();
        if name != "(request-target)" && HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err("bad header name");
        }
        if listed.contains(&name) {
            return Err("listed twice");
        }
        listed.push(name);
    }
    // A signature cannot cover the value that carries it.
    if listed.iter().any(|l| l == "authorization") {
        return Err("signs its own authorization");
    }
    let required: &[&str] = if b {
        &["date"]
    } else {
        &["(request-target)", "date"]
    };
    if required.iter().any(|r| !listed.iter().any(|l| l == r)) {
        return Err("required header not signed");
    }
    for name in &listed {
        match name.as_str() {
            "(request-target)" => {}
            "date" => {
                let d = match o.single("x-aux-date")? {
                    Some(d) => d,
                    None => o.single("date")?.ok_or("no date")?,
                };
                let d = httpdate::parse_http_date(d.trim()).map_err(|_| "bad date")?;
                let secs = d
                    .duration_since(UNIX_EPOCH)
                    .map_err(|_| "date before 1970")?
                    .as_secs();
                if secs.abs_diff(NOW) > SKEW {
                    return Err("date outside the window");
                }
            }
            other => {
                o.single(other)?.ok_or("signed header absent")?;
            }
        }
    }
    if !key_known {
        return Err("unknown key or wrong secret");
    }
    Ok(())
}

/// The spec's signing string over the final metadata (absent values sign as empty).
fn signing_string(headers: &HeaderMap, listed: &str, method: &str, path: &str) -> String {
    let value = |n: &str| {
        headers
            .get(n)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
            .unwrap_or_default()
    };
    let mut out: Vec<String> = Vec::new();
    for name in listed.split_ascii_whitespace() {
        let name = name.to_ascii_lowercase();
        out.push(match name.as_str() {
            "(request-target)" => {
                let path = path.split_once('?').map_or(path, |(p, _)| p);
                format!("(request-target): {} {path}", method.to_ascii_lowercase())
            }
            "date" if headers.contains_key("x-aux-date") => {
                format!("x-aux-date: {}", value("x-aux-date"))
            }
            _ => format!("{name}: {}", value(&name)),
        });
    }
    out.join("\n")
}

fn structured(data: &[u8]) {
    let [flags, kid_sel, off_lo, off_hi, misc, rest @ ..] = data else {
        return;
    };
    let (flags, misc) = (*flags, *misc);
    let b = flags & 0x80 != 0;
    let wrong_key = flags & 0x02 != 0;
    let alg = [
        HmacAlgorithm::Sha256,
        HmacAlgorithm::Sha384,
        HmacAlgorithm::Sha512,
        HmacAlgorithm::Sha1,
    ][usize::from((flags >> 2) & 3)];
    let url = flags & 0x10 != 0;
    let lower = flags & 0x20 != 0;
    let aux = flags & 0x40 != 0;
    let offset = i64::from(i16::from_le_bytes([*off_lo, *off_hi]));
    let method = method(misc);
    let junk_date = misc & 0x04 != 0;
    let omit_headers_param = misc & 0x08 != 0;
    let pad_date = misc & 0x10 != 0;

    let l = lines(rest);
    let text = |i: usize| String::from_utf8_lossy(l.get(i).copied().unwrap_or(b"")).into_owned();
    let listed_param = if omit_headers_param {
        "date".to_owned()
    } else {
        text(0)
    };
    let mut path = text(1);
    if path.is_empty() {
        path = "/helloworld.Greeter/SayHello".into();
    }
    let kid = match kid_sel & 3 {
        0 => "k1".to_owned(),
        1 => "k2".to_owned(),
        2 => "k3".to_owned(),
        _ => text(2),
    };
    let secret = match kid.as_str() {
        _ if wrong_key => WRONG,
        "k2" => SECRET2,
        _ => SECRET1,
    };
    let key_known = !wrong_key && (kid == "k1" || kid == "k2");

    let mut headers = HeaderMap::new();
    let date = httpdate::fmt_http_date(
        UNIX_EPOCH + Duration::from_secs(NOW.saturating_add_signed(offset)),
    );
    let date = if pad_date { format!("  {date} ") } else { date };
    if aux {
        headers.insert("x-aux-date", HeaderValue::from_str(&date).unwrap());
        if junk_date {
            headers.insert("date", HeaderValue::from_static("not a date"));
        }
    } else if !junk_date {
        headers.insert("date", HeaderValue::from_str(&date).unwrap());
    }
    add_extra(&mut headers, l.get(3..).unwrap_or(&[]));

    let signing = signing_string(&headers, &listed_param, method, &path);
    let sig = STANDARD.encode(mac(alg, secret, signing.as_bytes()));
    let encode = |url: bool| {
        if url {
            url_encode(&sig, lower)
        } else {
            sig.clone()
        }
    };
    let auth_value = |sig: &str| {
        let mut v = format!(r#"Signature keyId="{kid}",algorithm="{}""#, alg.name());
        if !omit_headers_param {
            v.push_str(&format!(r#",headers="{listed_param}""#));
        }
        v.push_str(&format!(r#",signature="{sig}""#));
        v
    };
    let Ok(value) = HeaderValue::from_str(&auth_value(&encode(url))) else {
        return;
    };
    if headers.contains_key("authorization") {
        headers.append("authorization", value);
    } else {
        headers.insert("authorization", value);
    }

    let v = verifier(b);
    let got = rt().block_on(v.verify(method, &path, &headers));
    // Quotes or backslashes in the key id or header list change how the parameters
    // parse; the rules below assume they do not.
    let plain_params = !kid.contains(['"', '\\']) && !listed_param.contains(['"', '\\']);
    if plain_params {
        let o = Oracle {
            headers: &headers,
            max_len: if b { MAX_LEN_B } else { 8 * 1024 },
        };
        let want = expected(&o, b, alg, key_known, &listed_param);
        // Parameter values must be non-empty.
        let want = want.and_then(|()| {
            if kid.trim().is_empty() || (!omit_headers_param && listed_param.trim().is_empty()) {
                Err("empty parameter")
            } else {
                Ok(())
            }
        });
        match (&got, want) {
            (Ok(ok), Ok(())) => {
                assert_eq!(ok.key_id, kid);
                assert_eq!(ok.algorithm, alg);
            }
            (Err(_), Err(_)) => {}
            (g, w) => panic!("verify {g:?}, but the rules say {w:?}\nsigning string {signing:?}"),
        }
    } else {
        assert!(
            got.is_err() || key_known,
            "accepted a signature made with an unknown key"
        );
    }
    if got.is_ok() {
        assert!(key_known, "accepted a signature made with an unknown key");
        // The same signature again, and in its other encoding: replays.
        let again = rt().block_on(v.verify(method, &path, &headers));
        assert_eq!(again, Err(HmacError::Replay), "a replay was accepted");
        let other = auth_value(&encode(!url));
        if other != auth_value(&encode(url)) {
            headers.insert("authorization", HeaderValue::from_str(&other).unwrap());
            let again = rt().block_on(v.verify(method, &path, &headers));
            assert!(again.is_err(), "a re-encoded replay was accepted");
            if other.len() <= o_max(b) {
                assert_eq!(again, Err(HmacError::Replay), "a re-encoded replay");
            }
        }
    }
}

fn o_max(b: bool) -> usize {
    if b { MAX_LEN_B } else { 8 * 1024 }
}

fuzz_target!(|data: &[u8]| {
    let Some(&flags) = data.first() else {
        return;
    };
    if flags & 1 == 0 {
        arbitrary(flags, &data[1..]);
    } else {
        structured(data);
    }
});
