//! Value parsers for the examples' clap command lines (included with `#[path]`).
//!
//! Each returns an error that names the expected form; clap adds the flag and the value.
#![allow(dead_code)]

/// Splits at the first `sep`; `form` (e.g. `USER:PASSWORD`) names the expected form.
pub(crate) fn pair(s: &str, sep: char, form: &str) -> Result<(String, String), String> {
    s.split_once(sep)
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .ok_or_else(|| format!("expected `{form}`"))
}

/// `USER:PASSWORD` (the password may contain `:`).
pub(crate) fn user_password(s: &str) -> Result<(String, String), String> {
    pair(s, ':', "USER:PASSWORD")
}

/// `KEY=PRINCIPAL` (an API key and the principal it authenticates as).
pub(crate) fn key_principal(s: &str) -> Result<(String, String), String> {
    pair(s, '=', "KEY=PRINCIPAL")
}

/// A policy pattern: `/package.Service/Method` or `/package.Service/*`. Anything else
/// (an empty value, `*`, `/pkg.S/Say*`) is refused rather than taken for a rule that
/// would never apply.
pub(crate) fn method_pattern(s: &str) -> Result<String, String> {
    match grpc_auth::Policy::is_pattern(s) {
        true => Ok(s.to_owned()),
        false => Err("expected `/package.Service/Method` or `/package.Service/*`".into()),
    }
}

/// `METHOD_PATH=SCOPE`: a policy pattern and one scope (no whitespace).
pub(crate) fn method_scope(s: &str) -> Result<(String, String), String> {
    let (path, scope) = pair(s, '=', "METHOD_PATH=SCOPE")?;
    method_pattern(&path)?;
    if scope.is_empty() || scope.chars().any(char::is_whitespace) {
        return Err("expected one scope after `=` (repeat the flag for several)".into());
    }
    Ok((path, scope))
}

/// A value parser for a flag that holds a secret: `parse`, but an error never shows the
/// value (clap's own "invalid value '..'" would print it, env-var values included).
#[derive(Clone)]
pub(crate) struct Secret(pub(crate) fn(&str) -> Result<(String, String), String>);

impl clap::builder::TypedValueParser for Secret {
    type Value = (String, String);

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Self::Value, clap::Error> {
        let flag = arg.map_or_else(|| "a flag".to_owned(), |a| format!("'{a}'"));
        let invalid = |why: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for {flag} (not shown: it holds a secret): {why}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value.to_str().ok_or_else(|| invalid("not UTF-8".into()))?;
        (self.0)(text).map_err(invalid)
    }
}

/// Parses `KEY_ID=SECRET`. A key id may end in base64 padding (the Tyk demo's
/// `eyJ...fQ==`): the split is at the last `=` of the first run of `=`, so
/// `abc===s3cret` is `("abc==", "s3cret")`.
pub(crate) fn key_secret(s: &str) -> Result<(String, String), String> {
    let start = s
        .find('=')
        .ok_or_else(|| "expected `KEY_ID=SECRET`".to_owned())?;
    let run = s[start..].bytes().take_while(|&b| b == b'=').count();
    let (id, secret) = s.split_at(start + run - 1);
    Ok((id.to_owned(), secret[1..].to_owned()))
}

/// A file's contents, read while the command line is parsed.
#[derive(Clone)]
pub(crate) struct FileBytes(pub Vec<u8>);

/// Reads the file at `path`.
pub(crate) fn read_file(path: &str) -> Result<FileBytes, String> {
    std::fs::read(path)
        .map(FileBytes)
        .map_err(|e| format!("cannot read {path}: {e}"))
}

/// A gRPC authorization policy file (gRFC A43), read and validated at parse time (so a
/// bad file is a usage error naming the file and the fault); its path.
pub(crate) fn authz_policy(path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    grpc_auth::authz::AuthorizationPolicy::from_json(&text).map_err(|e| format!("{path}: {e}"))?;
    Ok(path.to_owned())
}
