//! A private `redis-server` per test: on a Unix socket (or loopback ports, for a cluster) in a
//! temp dir, no persistence, stopped on drop. When `redis-server` is missing the tests skip
//! with a printed reason, except under CI (`CI` set), where they fail.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cacher_store::redis::{RedisOptions, RedisStore};

/// A prefix no other test of this process uses.
pub fn unique_prefix(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A private server and a store on it with a fresh prefix made from `tag`; `None` when
/// tests cannot run (see [`available`]). The setup most tests start with.
pub fn with_store(tag: &str) -> Option<(Server, RedisStore)> {
    let server = Server::start(&[])?;
    let store = server.store(&unique_prefix(tag));
    Some((server, store))
}

/// Whether tests can run; panics under CI when they cannot.
pub fn available() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("redis-server is not installed, and CI is set: .ci/run must install it");
        }
        eprintln!("skipped: redis-server is not installed (apt-get install redis-server)");
    }
    found
}

/// One running server process.
pub struct Server {
    dir: tempfile::TempDir,
    args: Vec<String>,
    /// Where it listens: a Unix socket path or a loopback port.
    pub listen: Listen,
    process: Option<Process>,
}

#[derive(Clone)]
pub enum Listen {
    Socket(PathBuf),
    Port(u16),
}

struct Process {
    pid: u32,
    /// The watchdog shell: it kills the server when our end of its stdin closes, so a test
    /// process that dies (even by SIGKILL) leaves no server behind.
    shell: Child,
    _stdin: ChildStdin,
}

impl Server {
    /// A server on a Unix socket, with `extra` arguments (`--requirepass x` ...).
    pub fn start(extra: &[&str]) -> Option<Server> {
        if !available() {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("redis.sock");
        let mut args: Vec<String> = [
            "--port",
            "0",
            "--unixsocket",
            socket.to_str().expect("utf-8 temp path"),
            "--unixsocketperm",
            "700",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut server = Server::new(dir, args, Listen::Socket(socket));
        server.spawn();
        Some(server)
    }

    /// A server on loopback `port`, with `extra` arguments; `None` if it did not come up
    /// (the port was taken meanwhile).
    pub fn start_on_port(port: u16, extra: &[&str]) -> Option<Server> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut args: Vec<String> = ["--port", &port.to_string(), "--bind", "127.0.0.1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut server = Server::new(dir, args, Listen::Port(port));
        server.try_spawn().then_some(server)
    }

    fn new(dir: tempfile::TempDir, mut args: Vec<String>, listen: Listen) -> Server {
        let base = [
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            dir.path().to_str().expect("utf-8 temp path"),
            "--enable-debug-command",
            "yes",
        ];
        args.splice(0..0, base.iter().map(|s| s.to_string()));
        Server {
            dir,
            args,
            listen,
            process: None,
        }
    }

    /// `redis+unix://` or `redis://` URL, with `auth` (`user:pass@`) when given.
    pub fn url_with(&self, auth: &str) -> String {
        match &self.listen {
            Listen::Socket(p) => {
                let mut url = format!("redis+unix://{}", p.display());
                if let Some((user, pass)) = auth.trim_end_matches('@').split_once(':') {
                    url.push_str(&format!("?user={user}&pass={pass}"));
                }
                url
            }
            Listen::Port(port) => format!("redis://{auth}127.0.0.1:{port}/0"),
        }
    }

    pub fn url(&self) -> String {
        self.url_with("")
    }

    fn spawn(&mut self) {
        assert!(
            self.try_spawn(),
            "redis-server did not start: {}",
            self.log()
        );
    }

    fn try_spawn(&mut self) -> bool {
        let log = self.dir.path().join("server.log");
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(r#"log="$1"; shift; redis-server "$@" </dev/null >>"$log" 2>&1 & p=$!; echo $p; read _; kill -9 $p 2>/dev/null; wait $p"#)
            .arg("sh")
            .arg(&log)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // The shell's own "Killed" notice when it reaps the server.
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning sh");
        let stdin = shell.stdin.take().expect("piped stdin");
        let mut line = String::new();
        BufReader::new(shell.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("reading the server's pid");
        let pid: u32 = line.trim().parse().expect("server pid");
        self.process = Some(Process {
            pid,
            shell,
            _stdin: stdin,
        });
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if self.ping() {
                return true;
            }
            if !alive(pid) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.kill();
        false
    }

    fn ping(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut c) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
            return false;
        };
        // With requirepass, an unauthenticated PING is refused: the server is up all the same.
        match redis::cmd("PING").query::<String>(&mut c) {
            Ok(_) => true,
            Err(e) => {
                e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm)
                    || e.to_string().contains("NOAUTH")
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Kills the server (SIGKILL) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = Command::new("kill")
                .arg("-9")
                .arg(p.pid.to_string())
                .status();
            // The shell reaps the server once its stdin closes, then exits.
            drop(p._stdin);
            let _ = p.shell.wait();
            if let Listen::Socket(s) = &self.listen {
                let _ = std::fs::remove_file(s);
            }
        }
    }

    /// Starts the server again with the same arguments (same socket or port), empty.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// A store on this server with key prefix `prefix` and default options.
    pub fn store(&self, prefix: &str) -> RedisStore {
        self.store_with(&RedisOptions::new(prefix))
    }

    /// A store on this server with `options`.
    pub fn store_with(&self, options: &RedisOptions) -> RedisStore {
        RedisStore::open_with(&self.url(), options)
            .expect("opening a RedisStore on the test server")
    }

    /// Two clients of one store (one fresh prefix made from `tag`), as on two hosts.
    pub fn two_clients(&self, tag: &str) -> (RedisStore, RedisStore) {
        let prefix = unique_prefix(tag);
        (self.store(&prefix), self.store(&prefix))
    }

    /// A raw client connection, for checks behind the store's back.
    pub fn raw(&self, auth: &str) -> redis::Connection {
        redis::Client::open(self.url_with(auth))
            .expect("client")
            .get_connection_with_timeout(Duration::from_secs(5))
            .expect("raw connection")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether `pid` runs (a zombie has already released its socket and ports).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// A loopback port that is free now, with `port + 10000` (the cluster bus) free as well.
pub fn free_port_pair() -> u16 {
    use std::net::TcpListener;
    for _ in 0..200 {
        let Ok(l) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let port = l.local_addr().expect("addr").port();
        if !(1024..=55000).contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port pair found");
}
