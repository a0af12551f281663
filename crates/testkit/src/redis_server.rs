//! A private `redis-server` for tests, benches and examples: on a Unix socket in a fresh directory,
//! nothing persisted, killed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How to get a `redis-server`, for messages that say it is missing.
const INSTALL: &str = "install one (Debian and Ubuntu: `sudo apt-get install redis-server`, macOS: \
                       `brew install redis`), or run `cargo xtask test`, which installs it";

/// A private `redis-server`: on a Unix socket in a fresh directory, nothing persisted, killed when
/// dropped.
#[derive(Debug)]
pub struct RedisServer {
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server.
    ///
    /// # Panics
    ///
    /// When it cannot start (saying how to install `redis-server`).
    pub fn start() -> Self {
        Self::try_start().unwrap_or_else(|err| panic!("{err}"))
    }

    /// Starts a server, or says why it could not.
    ///
    /// # Errors
    ///
    /// When `redis-server` is not on `PATH` (with how to install it) or does not open its socket in 10 s.
    pub fn try_start() -> Result<Self, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "bounded-redis-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("a temporary directory for redis-server: {e}"))?;
        let mut server = RedisServer { dir, child: None };
        server.spawn()?;
        Ok(server)
    }

    /// The server's Unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    /// A `redis+unix://` URL for the server.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    fn spawn(&mut self) -> Result<(), String> {
        let _ = std::fs::remove_file(self.socket());
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(self.socket())
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| {
                format!("could not start redis-server ({err}): it must be on PATH; {INSTALL}")
            })?;
        self.child = Some(child);
        let start = Instant::now();
        while !self.socket().exists() {
            if start.elapsed() > Duration::from_secs(10) {
                return Err("redis-server did not open its socket within 10 s".to_owned());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// A connection manager that retries quickly, as tests need after a restart.
    ///
    /// # Panics
    ///
    /// When the server cannot be reached.
    pub async fn connect(&self) -> ConnectionManager {
        let client = redis::Client::open(self.url()).expect("a valid Redis URL");
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(50))
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(None);
        ConnectionManager::new_with_config(client, config)
            .await
            .expect("connect to the private redis-server")
    }

    /// Stops the server at once, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same socket, empty.
    ///
    /// # Panics
    ///
    /// When it cannot start again.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn().unwrap_or_else(|err| panic!("{err}"));
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server answer again.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("a running server").id();
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.resume();
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The raw value of a key, to check what a script wrote.
///
/// # Panics
///
/// When Redis does not answer.
pub async fn get(conn: &mut ConnectionManager, key: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query_async(conn)
        .await
        .expect("GET")
}

/// Milliseconds until a key expires: -2 when it does not exist, -1 when it never expires.
///
/// # Panics
///
/// When Redis does not answer.
pub async fn pttl(conn: &mut ConnectionManager, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query_async(conn)
        .await
        .expect("PTTL")
}
