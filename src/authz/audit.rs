//! Audit logging of authorization decisions (gRFC A59): what a policy's
//! `audit_logging_options` name, the built-in `stdout_logger`, and the trait for others.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{AuditLoggerConfig, PolicyError};

/// One audited decision. It names the caller, never a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// The method path, `/package.Service/Method`.
    pub rpc_method: String,
    /// The caller as the policy saw it (`api-key:billing`, a SPIFFE ID); empty for an
    /// unauthenticated caller.
    pub principal: String,
    /// The policy's `name`.
    pub policy_name: String,
    /// The rule that decided; empty when none matched.
    pub matched_rule: String,
    /// Whether the call was allowed.
    pub authorized: bool,
}

/// Receives audited decisions. Called on the request path: do not block.
pub trait AuditLogger: Send + Sync + fmt::Debug + 'static {
    /// Records one decision.
    fn log(&self, event: &AuditEvent);
}

/// Makes a logger from a policy's `config` object (an error refuses the policy).
pub type AuditLoggerFactory = Arc<
    dyn Fn(&serde_json::Map<String, serde_json::Value>) -> Result<Arc<dyn AuditLogger>, String>
        + Send
        + Sync,
>;

/// The loggers a policy may name: `stdout_logger` built in, others registered.
#[derive(Clone)]
pub struct AuditLoggerRegistry {
    factories: HashMap<String, AuditLoggerFactory>,
}

impl Default for AuditLoggerRegistry {
    fn default() -> Self {
        let mut factories: HashMap<String, AuditLoggerFactory> = HashMap::new();
        factories.insert(
            "stdout_logger".to_owned(),
            Arc::new(|_| Ok(Arc::new(JsonLinesLogger::stdout()) as Arc<dyn AuditLogger>)),
        );
        Self { factories }
    }
}

impl AuditLoggerRegistry {
    /// The built-in loggers (`stdout_logger`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a logger a policy may name.
    pub fn register(
        mut self,
        name: impl Into<String>,
        factory: impl Fn(
            &serde_json::Map<String, serde_json::Value>,
        ) -> Result<Arc<dyn AuditLogger>, String>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.factories.insert(name.into(), Arc::new(factory));
        self
    }

    /// The loggers `configs` name: an unknown name is an error unless `is_optional`.
    pub(crate) fn build(
        &self,
        configs: &[AuditLoggerConfig],
    ) -> Result<Vec<Arc<dyn AuditLogger>>, PolicyError> {
        let mut loggers = Vec::with_capacity(configs.len());
        for c in configs {
            match self.factories.get(&c.name) {
                Some(factory) => loggers.push(
                    factory(&c.config)
                        .map_err(|e| PolicyError(format!("audit logger {}: {e}", c.name)))?,
                ),
                None if c.is_optional => {}
                None => {
                    return Err(PolicyError(format!(
                        "audit logger {} is not registered",
                        c.name
                    )));
                }
            }
        }
        Ok(loggers)
    }
}

impl fmt::Debug for AuditLoggerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.factories.keys().collect();
        names.sort();
        f.debug_struct("AuditLoggerRegistry")
            .field("loggers", &names)
            .finish()
    }
}

/// One JSON object per line, as grpc-go's `stdout_logger`:
/// `{"grpc_audit_log":{"rpc_method":..,"principal":..,"policy_name":..,"matched_rule":..,
/// "authorized":..,"timestamp":"2026-11-29T20:00:00.123456789Z"}}`.
pub struct JsonLinesLogger {
    out: Mutex<Box<dyn Write + Send>>,
}

impl JsonLinesLogger {
    /// Writes to standard output (the built-in `stdout_logger`).
    pub fn stdout() -> Self {
        Self::to(std::io::stdout())
    }

    /// Writes to `out`.
    pub fn to(out: impl Write + Send + 'static) -> Self {
        Self {
            out: Mutex::new(Box::new(out)),
        }
    }
}

impl AuditLogger for JsonLinesLogger {
    fn log(&self, event: &AuditEvent) {
        let line = serde_json::json!({
            "grpc_audit_log": {
                "rpc_method": event.rpc_method,
                "principal": event.principal,
                "policy_name": event.policy_name,
                "matched_rule": event.matched_rule,
                "authorized": event.authorized,
                "timestamp": rfc3339(SystemTime::now()),
            }
        });
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        // An audit line that cannot be written is logged, never a reason to fail a call.
        if writeln!(out, "{line}").is_err() {
            tracing::warn!("grpc-auth: audit line not written");
        }
    }
}

impl fmt::Debug for JsonLinesLogger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLinesLogger").finish_non_exhaustive()
    }
}

/// `t` as RFC 3339 in UTC with nanoseconds (`2026-11-29T20:00:00.123456789Z`).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let rem = secs % 86_400;
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let at = |s: u64, n: u32| rfc3339(UNIX_EPOCH + Duration::new(s, n));
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(at(1_795_982_400, 0), "2026-11-29T20:00:00.000000000Z");
        assert_eq!(at(4_102_444_799, 0), "2099-12-31T23:59:59.000000000Z");
    }

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_json_lines_logger_writes_grpc_go_fields() {
        let buf = Shared::default();
        let logger = JsonLinesLogger::to(buf.clone());
        logger.log(&AuditEvent {
            rpc_method: "/helloworld.Greeter/SayHello".into(),
            principal: "api-key:billing".into(),
            policy_name: "greeter".into(),
            matched_rule: "keys".into(),
            authorized: true,
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(text.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        let log = &v["grpc_audit_log"];
        assert_eq!(log["rpc_method"], "/helloworld.Greeter/SayHello");
        assert_eq!(log["principal"], "api-key:billing");
        assert_eq!(log["policy_name"], "greeter");
        assert_eq!(log["matched_rule"], "keys");
        assert_eq!(log["authorized"], true);
        assert!(log["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(log.as_object().unwrap().len(), 6);
    }

    #[test]
    fn unknown_loggers_are_an_error_unless_optional() {
        let reg = AuditLoggerRegistry::new();
        let cfg = |name: &str, is_optional| AuditLoggerConfig {
            name: name.into(),
            config: serde_json::Map::new(),
            is_optional,
        };
        assert_eq!(reg.build(&[cfg("stdout_logger", false)]).unwrap().len(), 1);
        assert_eq!(reg.build(&[cfg("mine", true)]).unwrap().len(), 0);
        assert_eq!(
            reg.build(&[cfg("mine", false)]).unwrap_err().to_string(),
            "invalid authorization policy: audit logger mine is not registered"
        );
        let reg = reg.register("mine", |c| {
            if c.contains_key("bad") {
                Err("bad config".into())
            } else {
                Ok(Arc::new(JsonLinesLogger::to(std::io::sink())) as Arc<dyn AuditLogger>)
            }
        });
        assert_eq!(reg.build(&[cfg("mine", false)]).unwrap().len(), 1);
        let mut bad = cfg("mine", false);
        bad.config.insert("bad".into(), serde_json::json!(1));
        assert_eq!(
            reg.build(&[bad]).unwrap_err().to_string(),
            "invalid authorization policy: audit logger mine: bad config"
        );
    }
}
