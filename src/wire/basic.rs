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

/// Decoded Basic credentials: the user and the password are read in place from one
/// buffer, wiped on drop.
pub(crate) struct Decoded {
    text: Zeroizing<String>,
    colon: usize,
}

impl Decoded {
    /// The user name.
    pub(crate) fn user(&self) -> &str {
        self.text.get(..self.colon).unwrap_or_default()
    }

    /// The password (may hold ':').
    pub(crate) fn password(&self) -> &str {
        self.text.get(self.colon + 1..).unwrap_or_default()
    }
}

/// The user and password of Basic `credentials` (the text after `Basic `).
pub(crate) fn decode(credentials: &str) -> Result<Decoded, BasicError> {
    let bytes = STANDARD
        .decode(credentials)
        .map_err(|_| BasicError::NotBase64)?;
    let text = Zeroizing::new(String::from_utf8(bytes).map_err(|e| {
        // The rejected bytes are wiped too.
        let mut bytes = e.into_bytes();
        zeroize::Zeroize::zeroize(&mut bytes);
        BasicError::NotUtf8
    })?);
    let colon = text.find(':').ok_or(BasicError::NoSeparator)?;
    let decoded = Decoded { text, colon };
    if decoded.user().is_empty() || decoded.password().is_empty() {
        return Err(BasicError::Empty);
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_client_writes_the_server_reads() {
        let v = value("ada", "love:lace");
        assert!(v.is_sensitive());
        let text = v.to_str().unwrap();
        let d = decode(text.strip_prefix("Basic ").unwrap()).unwrap();
        assert_eq!((d.user(), d.password()), ("ada", "love:lace"));
    }

    #[test]
    fn malformed_credentials_say_why() {
        let err = |s: &str| decode(s).err();
        assert_eq!(err("!!!"), Some(BasicError::NotBase64));
        assert_eq!(
            err(&STANDARD.encode([0xff, b':', 0xfe])),
            Some(BasicError::NotUtf8)
        );
        assert_eq!(
            err(&STANDARD.encode("adapw")),
            Some(BasicError::NoSeparator)
        );
        assert_eq!(err(&STANDARD.encode(":pw")), Some(BasicError::Empty));
        assert_eq!(err(&STANDARD.encode("ada:")), Some(BasicError::Empty));
    }
}
