//! `authorization: Basic base64(user:password)` (RFC 7617).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;
use zeroize::Zeroizing;

/// `Basic base64(user:password)` as a sensitive metadata value.
pub(crate) fn value(user: &str, password: &str) -> HeaderValue {
    let pair = Zeroizing::new(format!("{user}:{password}"));
    let text = Zeroizing::new(format!("Basic {}", STANDARD.encode(pair.as_bytes())));
    // Base64 is always a valid metadata value.
    let mut value = HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""));
    value.set_sensitive(true);
    value
}

/// Why Basic credentials do not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BasicError {
    NotBase64,
    NotUtf8,
    NoSeparator,
    Empty,
}

impl BasicError {
    /// The message a caller is shown.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::NotBase64 => "Basic credentials are not valid base64",
            Self::NotUtf8 => "Basic credentials are not valid UTF-8",
            Self::NoSeparator => "Basic credentials lack a ':' separator",
            Self::Empty => "Basic credentials have an empty user or password",
        }
    }
}

/// The user and password of Basic `credentials` (the text after `Basic `); the password
/// may hold ':'.
pub(crate) fn decode(credentials: &str) -> Result<(String, Zeroizing<String>), BasicError> {
    let bytes = Zeroizing::new(
        STANDARD
            .decode(credentials)
            .map_err(|_| BasicError::NotBase64)?,
    );
    let text = std::str::from_utf8(&bytes).map_err(|_| BasicError::NotUtf8)?;
    let (user, password) = text.split_once(':').ok_or(BasicError::NoSeparator)?;
    if user.is_empty() || password.is_empty() {
        return Err(BasicError::Empty);
    }
    Ok((user.to_owned(), Zeroizing::new(password.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_client_writes_the_server_reads() {
        let v = value("ada", "love:lace");
        assert!(v.is_sensitive());
        let text = v.to_str().unwrap();
        let (user, password) = decode(text.strip_prefix("Basic ").unwrap()).unwrap();
        assert_eq!((user.as_str(), password.as_str()), ("ada", "love:lace"));
    }

    #[test]
    fn malformed_credentials_say_why() {
        assert_eq!(decode("!!!"), Err(BasicError::NotBase64));
        assert_eq!(
            decode(&STANDARD.encode([0xff, b':', 0xfe])),
            Err(BasicError::NotUtf8)
        );
        assert_eq!(
            decode(&STANDARD.encode("adapw")),
            Err(BasicError::NoSeparator)
        );
        assert_eq!(decode(&STANDARD.encode(":pw")), Err(BasicError::Empty));
        assert_eq!(decode(&STANDARD.encode("ada:")), Err(BasicError::Empty));
    }
}
