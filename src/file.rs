//! Bounded file reads: what a file another process writes (a policy, a token) may cost.

use std::io::{self, Read as _};
use std::path::Path;

/// The file's bytes, refused (`InvalidData`, "larger than N bytes") past `max`: a
/// symlink to `/dev/zero` or a runaway writer cannot exhaust memory.
pub(crate) fn read_bounded(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
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
