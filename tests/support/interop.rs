//! Shared by the Python interop tests: the venv lookup (skip, or fail when interop is
//! required) and a temporary directory removed on drop.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");

/// The venv's Python, or `None` (skip) when it is missing and interop is not required.
pub(crate) fn python() -> Option<&'static Path> {
    let py = Path::new(PYTHON);
    if py.exists() {
        return Some(py);
    }
    if std::env::var("GRPC_AUTH_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!("GRPC_AUTH_REQUIRE_INTEROP=1 but {PYTHON} is missing: run .ci/python-setup.sh");
    }
    eprintln!("skipping: {PYTHON} is missing; run .ci/python-setup.sh");
    None
}

/// A directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(prefix: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub(crate) fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
