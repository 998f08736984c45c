//! The `Signature` parameters (`keyId="..",algorithm="..",headers="..",signature=".."`),
//! the signature's encodings and the signing string.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::HmacError;

/// The pseudo-header that signs the method and path.
pub(crate) const REQUEST_TARGET: &str = "(request-target)";
/// Bound on a parameter name's length (longer names are refused before being echoed).
const MAX_PARAM_NAME: usize = 32;

/// The parameters of `authorization: Signature <params>`, borrowed from the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Params<'a> {
    pub(crate) key_id: &'a str,
    pub(crate) algorithm: &'a str,
    /// The `headers` parameter as sent; `None` means the default, `date`.
    pub(crate) headers: Option<&'a str>,
    pub(crate) signature: &'a str,
}

fn malformed(msg: impl Into<Cow<'static, str>>) -> HmacError {
    HmacError::Malformed(msg.into())
}

/// Parses `name="value"` pairs separated by commas. Names are matched ignoring ASCII
/// case (as Tyk does); values must be quoted and contain no escapes; a repeated or
/// unknown parameter is refused.
pub(crate) fn parse_params(input: &str) -> Result<Params<'_>, HmacError> {
    let (mut key_id, mut algorithm, mut headers, mut signature) = (None, None, None, None);
    let mut rest = input.trim_start();
    if rest.is_empty() {
        return Err(malformed("no parameters"));
    }
    while !rest.is_empty() {
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(rest.len());
        let (name, after) = rest.split_at(name_len);
        if name.is_empty() {
            return Err(malformed("expected a parameter name"));
        }
        if name.len() > MAX_PARAM_NAME {
            return Err(malformed("parameter name too long"));
        }
        let after = after
            .trim_start()
            .strip_prefix('=')
            .ok_or_else(|| malformed(format!("expected = after {name}")))?;
        let after = after
            .trim_start()
            .strip_prefix('"')
            .ok_or_else(|| malformed(format!("value of {name} is not quoted")))?;
        let (value, after) = after
            .split_once('"')
            .ok_or_else(|| malformed(format!("unterminated value of {name}")))?;
        if value.contains('\\') {
            return Err(malformed(format!("escape in value of {name}")));
        }
        if value.trim().is_empty() {
            return Err(malformed(format!("empty value of {name}")));
        }
        let slot = if name.eq_ignore_ascii_case("keyId") {
            &mut key_id
        } else if name.eq_ignore_ascii_case("algorithm") {
            &mut algorithm
        } else if name.eq_ignore_ascii_case("headers") {
            &mut headers
        } else if name.eq_ignore_ascii_case("signature") {
            &mut signature
        } else {
            return Err(HmacError::UnknownParameter(name.to_owned()));
        };
        if slot.replace(value).is_some() {
            return Err(HmacError::DuplicateParameter(name.to_owned()));
        }
        rest = after.trim_start();
        if !rest.is_empty() {
            rest = rest
                .strip_prefix(',')
                .ok_or_else(|| malformed(format!("expected , after the value of {name}")))?
                .trim_start();
        }
    }
    Ok(Params {
        key_id: key_id.ok_or(HmacError::MissingParameter("keyId"))?,
        algorithm: algorithm.ok_or(HmacError::MissingParameter("algorithm"))?,
        headers,
        signature: signature.ok_or(HmacError::MissingParameter("signature"))?,
    })
}

/// The signature's bytes: base64 (standard alphabet, padded), optionally URL-encoded
/// (`%2B`, `%2F`, `%3D`, either case, as Tyk and Python's `quote_plus` send it). A `+`
/// stays a `+`: base64 has no spaces, so plain and URL-encoded forms never collide.
pub(crate) fn decode_signature(signature: &str) -> Result<Vec<u8>, HmacError> {
    let raw: Cow<'_, [u8]> = if signature.contains('%') {
        percent_encoding::percent_decode_str(signature).into()
    } else {
        signature.as_bytes().into()
    };
    STANDARD
        .decode(raw.as_ref())
        .map_err(|_| HmacError::SignatureEncoding)
}

/// Base64 of `mac`, URL-encoded like Go's `url.QueryEscape` when `url_encode`
/// (the form Tyk's gateway compares against).
pub(crate) fn encode_signature(mac: &[u8], url_encode: bool) -> String {
    let b64 = STANDARD.encode(mac);
    if url_encode {
        percent_encoding::utf8_percent_encode(&b64, percent_encoding::NON_ALPHANUMERIC).to_string()
    } else {
        b64
    }
}

/// Appends one `name: value` line (value trimmed) to a signing string.
pub(crate) fn push_line(out: &mut String, name: &str, value: &str) {
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(name);
    out.push_str(": ");
    out.push_str(value.trim());
}

/// Appends the `(request-target)` line: the lower-cased method, a space, the path
/// without its query.
pub(crate) fn push_request_target(out: &mut String, http_method: &str, path: &str) {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(REQUEST_TARGET);
    out.push_str(": ");
    out.extend(http_method.chars().map(|c| c.to_ascii_lowercase()));
    out.push(' ');
    out.push_str(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(input: &str) -> String {
        parse_params(input).unwrap_err().to_string()
    }

    #[test]
    fn parses_the_four_parameters_in_any_order_and_case() {
        let p = parse_params(
            r#"signature="c2ln" , KEYID="k1",algorithm = "hmac-sha256",headers="(request-target) date""#,
        )
        .unwrap();
        assert_eq!(
            p,
            Params {
                key_id: "k1",
                algorithm: "hmac-sha256",
                headers: Some("(request-target) date"),
                signature: "c2ln",
            }
        );
    }

    #[test]
    fn headers_is_optional() {
        let p = parse_params(r#"keyId="k",algorithm="hmac-sha512",signature="x""#).unwrap();
        assert_eq!(p.headers, None);
    }

    #[test]
    fn malformed_parameters_are_refused_with_the_reason() {
        assert_eq!(err(""), "malformed HMAC Signature: no parameters");
        assert_eq!(
            err(r#"keyId"k""#),
            "malformed HMAC Signature: expected = after keyId"
        );
        assert_eq!(
            err("keyId=k"),
            "malformed HMAC Signature: value of keyId is not quoted"
        );
        assert_eq!(
            err(r#"keyId="k"#),
            "malformed HMAC Signature: unterminated value of keyId"
        );
        assert_eq!(
            err(r#"keyId="k" algorithm="a""#),
            "malformed HMAC Signature: expected , after the value of keyId"
        );
        assert_eq!(
            err(r#"keyId="a\"b""#),
            "malformed HMAC Signature: escape in value of keyId"
        );
        assert_eq!(
            err(r#"keyId="",algorithm="a",signature="s""#),
            "malformed HMAC Signature: empty value of keyId"
        );
        assert_eq!(
            err(r#",keyId="k""#),
            "malformed HMAC Signature: expected a parameter name"
        );
        let long = format!(r#"{}="v""#, "a".repeat(33));
        assert_eq!(
            err(&long),
            "malformed HMAC Signature: parameter name too long"
        );
    }

    #[test]
    fn duplicate_unknown_and_missing_parameters_are_refused() {
        assert_eq!(
            err(r#"keyId="a",keyid="b",algorithm="hmac-sha256",signature="s""#),
            "malformed HMAC Signature: duplicate parameter keyid"
        );
        assert_eq!(
            err(r#"keyId="a",created="1",algorithm="hmac-sha256",signature="s""#),
            "malformed HMAC Signature: unknown parameter created"
        );
        assert_eq!(
            err(r#"algorithm="hmac-sha256",signature="s""#),
            "malformed HMAC Signature: missing parameter keyId"
        );
        assert_eq!(
            err(r#"keyId="a",signature="s""#),
            "malformed HMAC Signature: missing parameter algorithm"
        );
        assert_eq!(
            err(r#"keyId="a",algorithm="hmac-sha256""#),
            "malformed HMAC Signature: missing parameter signature"
        );
    }

    #[test]
    fn signature_is_accepted_plain_or_url_encoded_in_either_case() {
        let mac = [0xfbu8, 0xff, 0xfe, 0x3e, 0x00];
        let plain = STANDARD.encode(mac);
        assert!(plain.contains('+') && plain.contains('/') && plain.contains('='));
        let encoded = encode_signature(&mac, true);
        assert_eq!(
            encoded,
            plain
                .replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D")
        );
        assert_eq!(decode_signature(&plain).unwrap(), mac);
        assert_eq!(decode_signature(&encoded).unwrap(), mac);
        let lower = encoded
            .replace("%2B", "%2b")
            .replace("%2F", "%2f")
            .replace("%3D", "%3d");
        assert_eq!(decode_signature(&lower).unwrap(), mac);
        assert_eq!(
            decode_signature("not base64!"),
            Err(HmacError::SignatureEncoding)
        );
        assert_eq!(decode_signature("%zz"), Err(HmacError::SignatureEncoding));
    }

    #[test]
    fn signing_string_lines() {
        let mut s = String::new();
        push_request_target(&mut s, "POST", "/a.B/C?x=1");
        push_line(&mut s, "date", " Tue, 07 Jun 2014 20:51:35 GMT ");
        assert_eq!(
            s,
            "(request-target): post /a.B/C\ndate: Tue, 07 Jun 2014 20:51:35 GMT"
        );
    }
}
