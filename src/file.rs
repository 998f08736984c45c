//! Bounded file reads: what a file another process writes (a policy, a token) may cost.

use std::io::{self, Read as _};
use std::path::Path;

/// The file's bytes, refused (`InvalidData`, "larger than N bytes") past `max`: a
/// symlink to `/dev/zero` or a runaway writer cannot exhaust memory.
///
/// Opened non-blocking: a FIFO in its place reads as empty at once instead of hanging
/// the caller until something writes to it.
pub(crate) fn read_bounded(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let mut bytes = Vec::new();
    options
        .open(path)?
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(bytes)
}
