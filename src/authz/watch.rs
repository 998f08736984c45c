//! A policy file, watched: loaded at start, reloaded when it changes (gRFC A43's
//! file watcher, grpc-go's `authz.NewFileWatcher`).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::{AuditLoggerRegistry, AuthorizationPolicy, PolicyError, SharedPolicy};

/// Why a policy file could not be watched, or (in [`PolicyWatcher::last_error`]'s text)
/// reloaded. Each names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyFileError {
    /// The file could not be read (missing, not permitted, ...).
    #[error("cannot read authorization policy file {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the read said.
        source: io::Error,
    },
    /// The file was read, but is not a valid policy (or not UTF-8).
    #[error("authorization policy file {}: {source}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: PolicyError,
    },
    /// The interval between checks was zero.
    #[error("watching authorization policy file {}: the interval must be more than zero", .path.display())]
    ZeroInterval {
        /// The file.
        path: PathBuf,
    },
    /// [`PolicyWatcherBuilder::start`] was called outside a tokio runtime.
    #[error("watching authorization policy file {}: no tokio runtime to watch it on", .path.display())]
    NoRuntime {
        /// The file.
        path: PathBuf,
    },
}

/// The most a policy file may hold: 1 MiB. A larger one is refused (a symlink to
/// `/dev/zero` cannot exhaust memory).
pub(crate) const MAX_POLICY_BYTES: u64 = 1 << 20;

/// Watches an authorization policy file: loads it at start, then checks it every
/// interval and puts a changed, valid file in force; the layer takes its
/// [`policy`](Self::policy).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use grpc_auth::authn::ApiKeyAuthenticator;
/// use grpc_auth::authz::PolicyWatcher;
/// use grpc_auth::AuthLayer;
///
/// let watcher = PolicyWatcher::builder("/etc/greeter/policy.json")
///     .interval(Duration::from_secs(1))
///     .start()?; // within a tokio runtime; the file must be a valid policy
/// let layer = AuthLayer::new(ApiKeyAuthenticator::new().key("k-123", "billing"))
///     .authorization_policy(watcher.policy());
/// // Serve with `layer`, keeping `watcher` alive for as long as reloads are wanted.
/// # let _ = layer; Ok(()) }
/// ```
///
/// - **Start:** a file that cannot be read or is not a valid policy is an error
///   ([`PolicyFileError`], naming the file and what is wrong); nothing is served.
/// - **Change detection:** every interval ([`DEFAULT_INTERVAL`](Self::DEFAULT_INTERVAL),
///   1 s, unless [`interval`](PolicyWatcherBuilder::interval) says otherwise) the file is
///   read and its SHA-256 compared with that of the content read last; only a different
///   content is parsed. Content, not the modification time: an edit within the same
///   second (or one that keeps the time) is not missed, and a touch alone reloads
///   nothing. The cost is one read of a small file per interval.
/// - **Reload:** a changed, valid file is put in force for the calls that start from
///   then on ([`reloads`](Self::reloads) counts them, an info event says so). A changed
///   file that is invalid, or a file that cannot be read (deleted, being replaced), keeps
///   the last valid policy in force: a warning names the file and why, once per change
///   (not every interval), [`failures`](Self::failures) counts it and
///   [`last_error`](Self::last_error) tells it until the file is valid again. Write a
///   new policy to a temporary file and rename it over the watched one: a reader may
///   otherwise see it half-written (then it warns, and loads it at the next check).
/// - **Audit loggers:** the ones the policy names come from the
///   [`audit_loggers`](PolicyWatcherBuilder::audit_loggers) registry, at start and at
///   every reload.
/// - **Stop:** the checks run on a tokio task that ends when the watcher is dropped
///   (the layer then keeps the last policy in force). The task holds neither the policy
///   (a weak reference) nor the file open between checks.
#[derive(Debug)]
#[must_use = "dropping the watcher stops watching the file"]
pub struct PolicyWatcher {
    path: PathBuf,
    interval: Duration,
    policy: SharedPolicy,
    status: Arc<Status>,
    // Dropped with the watcher: the task sees the channel closed and ends.
    _stop: oneshot::Sender<()>,
}

/// Configures a [`PolicyWatcher`]: [`PolicyWatcher::builder`].
#[derive(Debug, Clone)]
#[must_use = "call start() to watch the file"]
pub struct PolicyWatcherBuilder {
    path: PathBuf,
    interval: Duration,
    registry: AuditLoggerRegistry,
}

/// What the task reports, shared with the watcher.
#[derive(Debug, Default)]
struct Status {
    reloads: AtomicU64,
    failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Status {
    fn set_error(&self, error: Option<String>) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = error;
    }
}

impl PolicyWatcher {
    /// How often the file is checked unless [`PolicyWatcherBuilder::interval`] says
    /// otherwise: every second.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

    /// Watches the policy file at `path`, checked every [`DEFAULT_INTERVAL`](Self::DEFAULT_INTERVAL),
    /// its audit loggers from the built-in ones; [`start`](PolicyWatcherBuilder::start) it.
    pub fn builder(path: impl Into<PathBuf>) -> PolicyWatcherBuilder {
        PolicyWatcherBuilder {
            path: path.into(),
            interval: Self::DEFAULT_INTERVAL,
            registry: AuditLoggerRegistry::default(),
        }
    }

    /// The policy in force, for [`AuthLayer::authorization_policy`](crate::AuthLayer::authorization_policy):
    /// reloads replace it there too. Clones share it.
    pub fn policy(&self) -> SharedPolicy {
        self.policy.clone()
    }

    /// The watched file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The time between checks.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How many changed, valid files were put in force (the load at start not counted).
    pub fn reloads(&self) -> u64 {
        self.status.reloads.load(Ordering::Acquire)
    }

    /// How many reloads failed: a changed file that was not a valid policy, or the file
    /// becoming unreadable (counted once until what the read says changes).
    pub fn failures(&self) -> u64 {
        self.status.failures.load(Ordering::Acquire)
    }

    /// Why the file as it is now is not what is in force (the message the warning
    /// logged, naming the file); `None` while the file read last is the policy in force.
    pub fn last_error(&self) -> Option<String> {
        self.status
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl PolicyWatcherBuilder {
    /// Checks the file every `every` (default [`PolicyWatcher::DEFAULT_INTERVAL`], 1 s;
    /// zero is refused at start).
    pub fn interval(mut self, every: Duration) -> Self {
        self.interval = every;
        self
    }

    /// Takes the audit loggers the policy names from `registry`, at start and at every
    /// reload (default: the built-in ones).
    pub fn audit_loggers(mut self, registry: AuditLoggerRegistry) -> Self {
        self.registry = registry;
        self
    }

    /// Loads the file and starts watching it on the current tokio runtime (which must
    /// have its time driver enabled, as tonic's servers do).
    ///
    /// An error when the file cannot be read or is not a valid policy (naming the file
    /// and what is wrong), when the interval is zero, or outside a tokio runtime.
    pub fn start(self) -> Result<PolicyWatcher, PolicyFileError> {
        let Self {
            path,
            interval,
            registry,
        } = self;
        if interval.is_zero() {
            return Err(PolicyFileError::ZeroInterval { path });
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(PolicyFileError::NoRuntime { path });
        };
        let bytes = match crate::file::read_bounded(&path, MAX_POLICY_BYTES) {
            Ok(bytes) => bytes,
            Err(source) => return Err(PolicyFileError::Read { path, source }),
        };
        let policy = match parse(&bytes, &registry) {
            Ok(policy) => policy,
            Err(source) => return Err(PolicyFileError::Invalid { path, source }),
        };
        let policy = SharedPolicy::new(policy);
        let status = Arc::new(Status::default());
        let (stop, stopped) = oneshot::channel();
        let task = Task {
            path: path.clone(),
            interval,
            registry,
            policy: Arc::downgrade(&policy.0),
            status: Arc::clone(&status),
            seen: digest(&bytes),
            content_error: None,
            read_error: None,
        };
        runtime.spawn(task.run(stopped));
        tracing::debug!(
            file = %path.display(),
            policy = policy.current().name(),
            ?interval,
            "grpc-auth: watching the authorization policy file"
        );
        Ok(PolicyWatcher {
            path,
            interval,
            policy,
            status,
            _stop: stop,
        })
    }
}

fn parse(bytes: &[u8], registry: &AuditLoggerRegistry) -> Result<AuthorizationPolicy, PolicyError> {
    let json = std::str::from_utf8(bytes)
        .map_err(|e| PolicyError(format!("the file is not UTF-8: {e}")))?;
    AuthorizationPolicy::from_json_with(json, registry)
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The background checks.
struct Task {
    path: PathBuf,
    interval: Duration,
    registry: AuditLoggerRegistry,
    policy: Weak<RwLock<Arc<AuthorizationPolicy>>>,
    status: Arc<Status>,
    /// The SHA-256 of the content read last, valid or not.
    seen: [u8; 32],
    /// Why that content is not in force (`None`: it is).
    content_error: Option<String>,
    /// What the last read said when it failed (`None`: it succeeded).
    read_error: Option<String>,
}

impl Task {
    async fn run(mut self, mut stopped: oneshot::Receiver<()>) {
        loop {
            // Resolves (with an error) as soon as the watcher drops its sender.
            if tokio::time::timeout(self.interval, &mut stopped)
                .await
                .is_ok()
            {
                break;
            }
            let path = self.path.clone();
            let read = match tokio::task::spawn_blocking(move || {
                crate::file::read_bounded(&path, MAX_POLICY_BYTES)
            })
            .await
            {
                Ok(read) => read,
                // The runtime is shutting down.
                Err(_) => break,
            };
            // The watcher may have been dropped during the read.
            if !matches!(stopped.try_recv(), Err(oneshot::error::TryRecvError::Empty)) {
                break;
            }
            let Some(policy) = self.policy.upgrade() else {
                break;
            };
            self.check(read, &SharedPolicy(policy));
        }
        tracing::debug!(
            file = %self.path.display(),
            "grpc-auth: stopped watching the authorization policy file"
        );
    }

    fn check(&mut self, read: io::Result<Vec<u8>>, policy: &SharedPolicy) {
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(source) => {
                let error = PolicyFileError::Read {
                    path: self.path.clone(),
                    source,
                }
                .to_string();
                if self.read_error.as_ref() != Some(&error) {
                    self.fail(&error);
                    self.read_error = Some(error);
                }
                return;
            }
        };
        let was_unreadable = self.read_error.take().is_some();
        let seen = digest(&bytes);
        if seen == self.seen {
            if was_unreadable {
                tracing::info!(
                    file = %self.path.display(),
                    "grpc-auth: authorization policy file readable again, unchanged"
                );
                self.status.set_error(self.content_error.clone());
            }
            return;
        }
        self.seen = seen;
        match parse(&bytes, &self.registry) {
            Ok(new) => {
                tracing::info!(
                    file = %self.path.display(),
                    policy = new.name(),
                    "grpc-auth: authorization policy reloaded"
                );
                self.content_error = None;
                self.status.set_error(None);
                self.status.reloads.fetch_add(1, Ordering::AcqRel);
                policy.replace(new);
            }
            Err(source) => {
                let error = PolicyFileError::Invalid {
                    path: self.path.clone(),
                    source,
                }
                .to_string();
                self.fail(&error);
                self.content_error = Some(error);
            }
        }
    }

    fn fail(&self, error: &str) {
        tracing::warn!(
            file = %self.path.display(),
            error,
            "grpc-auth: authorization policy reload failed; the last valid policy stays in force"
        );
        self.status.set_error(Some(error.to_owned()));
        self.status.failures.fetch_add(1, Ordering::AcqRel);
    }
}
