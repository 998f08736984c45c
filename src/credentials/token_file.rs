//! [`FileTokenSource`]: a JWT read from a file that something else rotates (gRFC A97;
//! Kubernetes projected service-account tokens).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::token_source::{Token, TokenError, TokenSource};
use crate::clock::{self, Clock};

/// The most a token file may hold: 64 KiB.
pub(crate) const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;
/// Default: read the file again at least this often, whatever the token's `exp`.
pub(crate) const DEFAULT_REREAD: Duration = Duration::from_secs(300);

/// A token source reading a JWT from `path` (gRFC A97, grpc-go's `jwt_token_file`), for
/// [`TokenSourceCredentials`](super::TokenSourceCredentials).
///
/// The file holds one JWT (surrounding whitespace ignored). Its `exp` (read without
/// verifying the signature: the server verifies it) is the token's expiry, capped at
/// [`reread_every`](Self::reread_every) (5 minutes) from the read: so the credentials
/// fetch it again before `exp` and, at least that often, pick up a file the rotator
/// replaced. A file that cannot be read is `UNAVAILABLE` (retried with backoff); one
/// whose content is not a JWT with a numeric `exp` in the future is refused
/// (`UNAUTHENTICATED`). Neither message shows the token.
///
/// ```no_run
/// use grpc_auth::credentials::{FileTokenSource, TokenSourceCredentials};
/// let creds = TokenSourceCredentials::new(FileTokenSource::new(
///     "/var/run/secrets/tokens/grpc-token",
/// ));
/// # let _ = creds;
/// ```
#[derive(Clone)]
pub struct FileTokenSource {
    path: PathBuf,
    reread: Duration,
    clock: Arc<dyn Clock>,
}

impl FileTokenSource {
    /// Reads the token from `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            reread: DEFAULT_REREAD,
            clock: clock::system(),
        }
    }

    /// Reads the file again at least this often (default 5 minutes, at least 1 s).
    pub fn reread_every(mut self, every: Duration) -> Self {
        self.reread = every.max(Duration::from_secs(1));
        self
    }

    /// Reads the time from `clock` (tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The `exp` of a JWT, unverified; `None` when it is not a JWT with a numeric `exp`.
fn jwt_exp(token: &str) -> Option<u64> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    // RFC 7519: a NumericDate may have a fractional part.
    let exp = claims.get("exp")?.as_f64()?;
    (exp.is_finite() && exp >= 0.0).then_some(exp as u64)
}

impl TokenSource for FileTokenSource {
    async fn fetch(&self) -> Result<Token, TokenError> {
        let path = self.path.clone();
        let read = tokio::task::spawn_blocking(move || {
            crate::file::read_bounded(&path, MAX_TOKEN_FILE_BYTES)
        })
        .await
        .map_err(|_| TokenError::Unavailable("token file read was cancelled".into()))?;
        let bytes = read.map_err(|e| {
            TokenError::Unavailable(format!(
                "cannot read token file {}: {e}",
                self.path.display()
            ))
        })?;
        let refused =
            |why: &str| TokenError::Refused(format!("token file {}: {why}", self.path.display()));
        let text = std::str::from_utf8(&bytes).map_err(|_| refused("not text"))?;
        let token = text.trim();
        let exp = jwt_exp(token).ok_or_else(|| refused("not a JWT with an exp claim"))?;
        let exp = clock::add(UNIX_EPOCH, Duration::from_secs(exp));
        let now = self.clock.now();
        if exp <= now {
            return Err(refused("the token has expired"));
        }
        let until = exp.min(clock::add(now, self.reread));
        Ok(Token::new(token.to_owned(), Some(until)))
    }
}

impl fmt::Debug for FileTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileTokenSource")
            .field("path", &self.path)
            .field("reread", &self.reread)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::time::SystemTime;

    const NOW: u64 = 1_700_000_000;

    fn jwt(claims: &str) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    fn file(name: &str, content: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("grpc-auth-token-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    fn source(path: &Path) -> FileTokenSource {
        FileTokenSource::new(path).clock(ManualClock::at_unix(NOW))
    }

    fn expires(t: &Token) -> Option<SystemTime> {
        t.expires_at()
    }

    #[tokio::test]
    async fn the_token_is_read_and_expires_at_its_exp_or_the_reread_cap() {
        let short = jwt(&format!(r#"{{"sub":"w","exp":{}}}"#, NOW + 60));
        let p = file("short", format!("  {short}\n").as_bytes());
        let t = source(&p).fetch().await.unwrap();
        assert_eq!(t.value().expose(), short.as_bytes());
        assert_eq!(
            expires(&t),
            Some(UNIX_EPOCH + Duration::from_secs(NOW + 60))
        );
        let long = jwt(&format!(r#"{{"exp":{}}}"#, NOW + 86_400));
        let p = file("long", long.as_bytes());
        let t = source(&p).fetch().await.unwrap();
        assert_eq!(
            expires(&t),
            Some(UNIX_EPOCH + Duration::from_secs(NOW + 300)),
            "capped at the re-read interval"
        );
    }

    #[tokio::test]
    async fn bad_files_are_refused_or_unavailable_without_showing_the_token() {
        let expired = jwt(&format!(r#"{{"exp":{}}}"#, NOW - 1));
        for (name, content, want) in [
            (
                "expired",
                expired.as_bytes().to_vec(),
                "the token has expired",
            ),
            (
                "no-exp",
                jwt(r#"{"sub":"w"}"#).into_bytes(),
                "not a JWT with an exp claim",
            ),
            (
                "garbage",
                b"not.a.jwt.at.all".to_vec(),
                "not a JWT with an exp claim",
            ),
            ("binary", vec![0xff, 0xfe], "not text"),
        ] {
            let p = file(name, &content);
            let e = source(&p).fetch().await.unwrap_err();
            assert!(matches!(e, TokenError::Refused(_)), "{name}: {e}");
            assert!(e.to_string().ends_with(want), "{name}: {e}");
            assert!(
                !e.to_string().contains("eyJ"),
                "{name}: the token is not shown"
            );
        }
        let missing = std::env::temp_dir().join("grpc-auth-no-such-token-file");
        let e = source(&missing).fetch().await.unwrap_err();
        assert!(matches!(e, TokenError::Unavailable(_)), "{e}");
        let big = file("big", &vec![b'a'; 64 * 1024 + 1]);
        let e = source(&big).fetch().await.unwrap_err();
        assert!(e.to_string().contains("larger than 65536 bytes"), "{e}");
    }

    #[tokio::test]
    async fn a_rotated_file_is_picked_up_on_the_next_fetch() {
        let a = jwt(&format!(r#"{{"sub":"a","exp":{}}}"#, NOW + 600));
        let b = jwt(&format!(r#"{{"sub":"b","exp":{}}}"#, NOW + 600));
        let p = file("rotated", a.as_bytes());
        let s = source(&p);
        assert_eq!(s.fetch().await.unwrap().value().expose(), a.as_bytes());
        std::fs::write(&p, b.as_bytes()).unwrap();
        assert_eq!(s.fetch().await.unwrap().value().expose(), b.as_bytes());
    }
}
