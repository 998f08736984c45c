//! [`CallContext`]: what a credential is told about the call.

use std::borrow::Cow;

use http::Uri;

/// What a credential is told about the call (gRPC's `AuthMetadataContext`).
///
/// Borrowed from the request: building one allocates nothing; the service URL is
/// formed only when a credential asks for it.
#[derive(Debug, Clone, Copy)]
pub struct CallContext<'a> {
    origin: &'a str,
    service: &'a str,
    method_name: &'a str,
    /// The whole request path when known (`for_path`), else empty.
    path: &'a str,
    secure: bool,
    /// Which call this is (observed calls through the layer), 0 when unknown.
    call: u64,
}

impl<'a> CallContext<'a> {
    /// A context for `method_name` on `service_url` (`scheme://authority/package.Service`).
    pub fn new(service_url: &'a str, method_name: &'a str, secure: bool) -> Self {
        Self {
            origin: service_url,
            service: "",
            method_name,
            path: "",
            secure,
            call: 0,
        }
    }

    /// A context for the request path `/package.Service/Method` on `origin`
    /// (`scheme://authority`).
    pub(crate) fn for_path(origin: &'a str, path: &'a str, secure: bool) -> Self {
        let (service, method_name) = path.rsplit_once('/').unwrap_or(("", path));
        Self {
            origin,
            service,
            method_name,
            path,
            secure,
            call: 0,
        }
    }

    /// The same context for call `id` (see [`call_id`](Self::call_id)).
    pub(crate) fn with_call_id(mut self, id: u64) -> Self {
        self.call = id;
        self
    }

    /// Identifies the call: for calls through [`CredentialsLayer`](super::CredentialsLayer) whose credentials
    /// observe responses, [`CallCredentials::apply`](super::CallCredentials::apply) and
    /// [`CallCredentials::on_response`](super::CallCredentials::on_response) of one call see the same non-zero id, and no
    /// other call has it. 0 for a context made with [`CallContext::new`].
    pub fn call_id(&self) -> u64 {
        self.call
    }

    /// `scheme://authority/package.Service`, `:443` dropped for https (as gRPC core forms it).
    pub fn service_url(&self) -> String {
        format!("{}{}", self.origin, self.service)
    }

    /// The method's name, e.g. `SayHello`.
    pub fn method_name(&self) -> &'a str {
        self.method_name
    }

    /// The method path, `/package.Service/Method` (what HMAC signs as the request target).
    ///
    /// Borrowed for calls through [`CredentialsLayer`](super::CredentialsLayer); formed from the service URL for a
    /// context made with [`CallContext::new`].
    pub fn method_path(&self) -> Cow<'a, str> {
        if !self.path.is_empty() {
            return Cow::Borrowed(self.path);
        }
        // `new`: the origin is the whole service URL; its path starts after the authority.
        let after_scheme = self
            .origin
            .split_once("://")
            .map_or(self.origin, |(_, rest)| rest);
        let service = after_scheme
            .find('/')
            .map_or("", |i| after_scheme.split_at(i).1);
        Cow::Owned(format!("{service}/{}", self.method_name))
    }

    /// Whether the channel is secure (TLS).
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// Whether the call is to `path` (`/package.Service/Method`).
    pub fn is_path(&self, path: &str) -> bool {
        if self.service.is_empty() {
            // A context made with `new`: compare with the path formed from its URL.
            return self.method_path() == path;
        }
        path.strip_prefix(self.service)
            .and_then(|rest| rest.strip_prefix('/'))
            == Some(self.method_name)
    }
}

/// `scheme://authority` of a target, with `:443` dropped for https; and whether it is TLS.
pub(crate) fn origin(target: &Uri) -> (String, bool) {
    let secure = target.scheme_str() == Some("https");
    let scheme = target.scheme_str().unwrap_or("http");
    let host = target.host().unwrap_or("");
    let origin = match target.port_u16() {
        Some(443) if secure => format!("{scheme}://{host}"),
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    };
    (origin, secure)
}
