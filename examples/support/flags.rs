//! Flag values shared by the examples (included with `#[path]`).
#![allow(dead_code)]

/// Parses `a=b` / `a:b` pairs from flags.
pub fn pair(s: &str, sep: char) -> Result<(String, String), String> {
    s.split_once(sep)
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .ok_or_else(|| format!("expected `a{sep}b`, got {s:?}"))
}

/// Parses `KEY_ID=SECRET`. A key id may end in base64 padding (the Tyk demo's
/// `eyJ...fQ==`): the split is at the last `=` of the first run of `=`, so
/// `abc===s3cret` is `("abc==", "s3cret")`.
pub fn key_secret(s: &str) -> Result<(String, String), String> {
    let start = s
        .find('=')
        .ok_or_else(|| format!("expected `KEY_ID=SECRET`, got {s:?}"))?;
    let run = s[start..].bytes().take_while(|&b| b == b'=').count();
    let (id, secret) = s.split_at(start + run - 1);
    Ok((id.to_owned(), secret[1..].to_owned()))
}
