//! A throwaway `redis-server` for the store tests: its own port on 127.0.0.1, no
//! persistence, a temporary working directory, killed on drop. Tests include it with
//! `#[path = "support/redis.rs"] mod redis_server;`.
//!
//! When `redis-server` is not installed, [`RedisServer::start`] returns `None` (the test
//! skips), or panics when `GRPC_AUTH_REQUIRE_INTEROP=1` (CI: the tests must run).
//!
//! Besides starting and stopping, the harness speaks enough RESP over a plain
//! `TcpStream` to check the server ([`RedisServer::command`]) and to make it slow
//! ([`RedisServer::pause`], `DEBUG SLEEP`).
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where `redis-server` is looked for when it is not on `PATH`.
const FALLBACK: &str = "/usr/bin/redis-server";
/// How long a started server has to answer `PING`.
const READY_WITHIN: Duration = Duration::from_secs(5);

/// A `redis-server` child process on 127.0.0.1, killed on drop.
pub(crate) struct RedisServer {
    bin: PathBuf,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

/// One RESP reply, as [`RedisServer::command`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `+OK`, `+PONG`.
    Simple(String),
    /// `-ERR ...`.
    Error(String),
    /// `:1`.
    Int(i64),
    /// `$n` bytes, or `$-1` (`None`).
    Bulk(Option<Vec<u8>>),
    /// `*n` replies, or `*-1` (`None`).
    Array(Option<Vec<Reply>>),
}

impl RedisServer {
    /// A fresh server on a free port, answering `PING`; `None` (skip) when
    /// `redis-server` is not installed, unless `GRPC_AUTH_REQUIRE_INTEROP=1` (then a panic).
    pub(crate) fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// [`start`](Self::start) with more `redis-server` arguments (`["--requirepass", "x"]`).
    pub(crate) fn start_with(extra: &[&str]) -> Option<Self> {
        let bin = find()?;
        let dir = temp_dir();
        let mut server = Self {
            bin,
            port: 0,
            dir,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
        };
        // A port taken between choosing it and redis binding it: choose another.
        let mut last = None;
        for _ in 0..5 {
            server.port = free_port();
            match server.spawn() {
                Ok(child) => {
                    server.child = Some(child);
                    return Some(server);
                }
                Err(e) => last = Some(e),
            }
        }
        panic!(
            "redis-server did not start: {}",
            last.unwrap_or_else(|| "no attempt".to_owned())
        );
    }

    /// `redis://127.0.0.1:{port}`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (the same across [`restart`](Self::restart)).
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Whether the process is running (started and not stopped).
    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL) and waits for it to exit. Nothing listens on the port
    /// afterwards. Does nothing when it is stopped.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server if it runs and starts a new, empty one (persistence is off) on
    /// the same port, answering `PING`. Retries for a few seconds while the port is busy.
    pub(crate) fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            match self.spawn() {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(e) if Instant::now() >= deadline => {
                    panic!("redis-server did not restart on port {}: {e}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Makes the server answer nothing for `dur` (`DEBUG SLEEP`, which blocks its one
    /// command thread), returning once it sleeps. The returned thread ends when the
    /// sleep does (or the server is gone).
    pub(crate) fn pause(&self, dur: Duration) -> JoinHandle<()> {
        let mut conn = self.session().expect("connect to redis-server");
        let secs = format!("{:.3}", dur.as_secs_f64());
        conn.write_all(&encode(&[b"DEBUG", b"SLEEP", secs.as_bytes()]))
            .expect("send DEBUG SLEEP");
        let sleeper = std::thread::spawn(move || {
            let _ = conn.set_read_timeout(None);
            let reply = read_reply(&mut BufReader::new(conn));
            if let Ok(Reply::Error(e)) = reply {
                panic!("DEBUG SLEEP refused: {e}");
            }
        });
        // It sleeps once a PING on another connection goes unanswered for a while.
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            match self.ping_within(Duration::from_millis(100)) {
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    return sleeper;
                }
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        panic!("redis-server on port {} did not start sleeping", self.port);
    }

    /// Sends one command on a new connection and reads its reply (blocking, 5 s at most).
    pub(crate) fn command(&self, args: &[&[u8]]) -> io::Result<Reply> {
        let mut conn = self.session()?;
        conn.set_read_timeout(Some(READY_WITHIN))?;
        conn.write_all(&encode(args))?;
        read_reply(&mut BufReader::new(conn))
    }

    /// The names of every key (`KEYS *`), sorted.
    pub(crate) fn keys(&self) -> Vec<String> {
        match self.command(&[b"KEYS", b"*"]).expect("KEYS *") {
            Reply::Array(Some(items)) => {
                let mut names: Vec<String> = items
                    .into_iter()
                    .map(|item| match item {
                        Reply::Bulk(Some(b)) => String::from_utf8(b).expect("UTF-8 key name"),
                        other => panic!("KEYS answered {other:?}"),
                    })
                    .collect();
                names.sort();
                names
            }
            other => panic!("KEYS answered {other:?}"),
        }
    }

    /// The server's working directory (its log is `redis.log` there).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn connect(&self) -> io::Result<TcpStream> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        TcpStream::connect_timeout(&addr, Duration::from_secs(1))
    }

    /// `PING` on a new connection: `Ok` on `+PONG` (or `-NOAUTH` from a server with a
    /// password: it serves), a timeout error when no answer comes within `wait`.
    fn ping_within(&self, wait: Duration) -> io::Result<()> {
        let mut conn = self.connect()?;
        conn.set_read_timeout(Some(wait))?;
        conn.write_all(b"PING\r\n")?;
        let line = read_line(&mut BufReader::new(conn))?;
        if line == "+PONG" || line.starts_with("-NOAUTH") {
            Ok(())
        } else {
            Err(io::Error::other(format!("PING answered {line:?}")))
        }
    }

    /// A new connection, authenticated when the server was started with `--requirepass`.
    fn session(&self) -> io::Result<TcpStream> {
        let mut conn = self.connect()?;
        let password = self
            .extra
            .iter()
            .position(|a| a == "--requirepass")
            .and_then(|i| self.extra.get(i + 1));
        if let Some(password) = password {
            conn.set_read_timeout(Some(READY_WITHIN))?;
            conn.write_all(&encode(&[b"AUTH", password.as_bytes()]))?;
            let mut reader = BufReader::new(conn.try_clone()?);
            match read_reply(&mut reader)? {
                Reply::Simple(ok) if ok == "OK" => {}
                other => return Err(io::Error::other(format!("AUTH answered {other:?}"))),
            }
        }
        Ok(conn)
    }

    /// Starts redis-server on `self.port` and waits for `PING`; `Err` with the log's
    /// tail when it exits or does not answer in time.
    fn spawn(&self) -> Result<Child, String> {
        let log_path = self.dir.join("redis.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("create log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("clone log: {e}"))?;
        let mut child = Command::new(&self.bin)
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .args(["--enable-debug-command", "yes"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.bin.display()))?;
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("exited ({status}): {}", log_tail(&log_path)));
            }
            // Answered by this child: a PING refused while another process held the
            // port would have made the child exit, seen above on the next round.
            if self.ping_within(Duration::from_millis(200)).is_ok() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("exited ({status}): {}", log_tail(&log_path)));
                }
                return Ok(child);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "no PONG within {READY_WITHIN:?}: {}",
                    log_tail(&log_path)
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("running", &self.child.is_some())
            .finish_non_exhaustive()
    }
}

/// `redis-server` on `PATH`, else [`FALLBACK`]; `None` (skip) or a panic (required).
fn find() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("redis-server"))
            .find(|p| p.is_file())
    });
    if let Some(bin) = on_path.or_else(|| {
        let p = PathBuf::from(FALLBACK);
        p.is_file().then_some(p)
    }) {
        return Some(bin);
    }
    if std::env::var("GRPC_AUTH_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!(
            "GRPC_AUTH_REQUIRE_INTEROP=1 but redis-server is missing (not on PATH nor at \
             {FALLBACK}): apt-get install redis-server"
        );
    }
    eprintln!("skipping: redis-server is missing (not on PATH nor at {FALLBACK})");
    None
}

/// A port nothing listens on just now.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// A new directory under the system temp dir (removed with the server).
fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "grpc-auth-redis-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create redis temp dir");
    dir
}

/// The last lines of the server's log, for a failure message.
fn log_tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

/// A command as a RESP array of bulk strings.
fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "redis closed the connection",
        ));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn read_reply(r: &mut impl BufRead) -> io::Result<Reply> {
    let line = read_line(r)?;
    let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("bad RESP: {line:?}"));
    let (tag, rest) = line.split_at_checked(1).ok_or_else(bad)?;
    let number = || rest.parse::<i64>().map_err(|_| bad());
    Ok(match tag {
        "+" => Reply::Simple(rest.to_owned()),
        "-" => Reply::Error(rest.to_owned()),
        ":" => Reply::Int(number()?),
        "$" => match usize::try_from(number()?) {
            Err(_) => Reply::Bulk(None),
            Ok(n) => {
                let mut buf = vec![0; n + 2];
                r.read_exact(&mut buf)?;
                buf.truncate(n);
                Reply::Bulk(Some(buf))
            }
        },
        "*" => match usize::try_from(number()?) {
            Err(_) => Reply::Array(None),
            Ok(n) => Reply::Array(Some(
                (0..n)
                    .map(|_| read_reply(r))
                    .collect::<io::Result<Vec<_>>>()?,
            )),
        },
        _ => return Err(bad()),
    })
}
