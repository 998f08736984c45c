//! [`StaticEntry`]: one precomputed, sensitive metadata entry for static credentials.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};
use tonic::Status;

/// One precomputed metadata entry, marked sensitive; the value is checked at construction.
#[derive(Clone)]
pub(crate) struct StaticEntry {
    name: HeaderName,
    value: Result<HeaderValue, &'static str>,
}

impl StaticEntry {
    pub(crate) fn new(name: HeaderName, value: &[u8], what: &'static str) -> Self {
        let value = HeaderValue::from_bytes(value)
            .map(|mut v| {
                v.set_sensitive(true);
                v
            })
            .map_err(|_| what);
        Self { name, value }
    }

    /// The same value under metadata `name`.
    pub(crate) fn renamed(self, name: HeaderName) -> Self {
        Self { name, ..self }
    }

    pub(crate) fn apply(&self, metadata: &mut HeaderMap) -> Result<(), Status> {
        match &self.value {
            Ok(v) => {
                metadata.insert(self.name.clone(), v.clone());
                Ok(())
            }
            Err(what) => Err(Status::unauthenticated(format!(
                "{what} is not a valid metadata value"
            ))),
        }
    }
}

impl fmt::Debug for StaticEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: [redacted]", self.name)
    }
}
