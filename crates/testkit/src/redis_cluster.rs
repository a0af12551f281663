//! A private Redis Cluster for tests: three `redis-server` primaries on local TCP ports, each slot
//! range on one of them, nothing persisted, every process killed when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;

/// How many primaries the cluster has.
pub const NODES: usize = 3;

/// A private Redis Cluster of [`NODES`] primaries and no replicas.
#[derive(Debug)]
pub struct RedisCluster {
    dir: PathBuf,
    ports: Vec<u16>,
    children: Vec<Option<Child>>,
}

impl RedisCluster {
    /// Starts the nodes and joins them into one cluster with every slot covered. Ports are chosen
    /// free just before the nodes start, so a port taken in between (by another test starting its
    /// own cluster) fails that start, and it is tried again on other ports, up to three times.
    ///
    /// # Panics
    ///
    /// When `redis-server` or `redis-cli` is missing, or no cluster is ready after three tries.
    pub fn start() -> Self {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::try_start() {
                Ok(cluster) => return cluster,
                Err(err) => failures.push(err),
            }
        }
        panic!("could not start a Redis Cluster: {}", failures.join("; "));
    }

    fn try_start() -> Result<Self, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "bounded-redis-cluster-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory for the cluster");
        let ports = free_ports(NODES);
        let mut cluster = RedisCluster {
            dir,
            ports: ports.clone(),
            children: Vec::new(),
        };
        for port in &ports {
            let child = cluster.spawn(*port);
            cluster.children.push(Some(child));
        }
        for (at, port) in ports.iter().enumerate() {
            // A node that could not bind its port (or its bus port) exits: then nothing answers
            // there, or someone else does, and the start is tried again on other ports.
            let child = cluster.children[at].as_mut().expect("just started");
            let exited = |child: &mut Child| !matches!(child.try_wait(), Ok(None));
            try_until(&format!("port {port} to accept connections"), || {
                if exited(child) {
                    return Err(format!("the node on port {port} exited at start"));
                }
                Ok(TcpStream::connect(("127.0.0.1", *port)).is_ok())
            })?;
            if exited(child) {
                return Err(format!("the node on port {port} exited at start"));
            }
        }
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(ports.iter().map(|port| format!("127.0.0.1:{port}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|err| {
                panic!("could not run redis-cli ({err}): it comes with redis-server")
            });
        if !status.success() {
            return Err(format!(
                "redis-cli --cluster create failed on ports {ports:?}"
            ));
        }
        for port in &ports {
            try_until(&format!("node {port} to see the cluster ready"), || {
                Ok(cli(*port, &["cluster", "info"]).contains("cluster_state:ok"))
            })?;
        }
        Ok(cluster)
    }

    /// The nodes' `redis://` URLs.
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}/"))
            .collect()
    }

    /// A cluster connection, as a service would make one.
    ///
    /// # Panics
    ///
    /// When the cluster cannot be reached.
    pub async fn connect(&self) -> ClusterConnection {
        ClusterClient::builder(self.urls())
            .connection_timeout(Duration::from_millis(500))
            .build()
            .expect("a valid cluster client")
            .get_async_connection()
            .await
            .expect("connect to the private cluster")
    }

    /// The port of the node that holds `key` (its primary, from `CLUSTER KEYSLOT` and `CLUSTER NODES`,
    /// asked of a node that is running).
    ///
    /// # Panics
    ///
    /// When the cluster does not answer.
    pub fn node_of(&self, key: &str) -> u16 {
        let first = self
            .ports
            .iter()
            .zip(&self.children)
            .find_map(|(port, child)| child.as_ref().map(|_| *port))
            .expect("a node running");
        let slot: u16 = cli(first, &["cluster", "keyslot", key])
            .trim()
            .parse()
            .expect("a slot number");
        let nodes = cli(first, &["cluster", "nodes"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some(address) = fields.get(1) else {
                continue;
            };
            let port: u16 = address
                .split(['@', ':'])
                .nth(1)
                .and_then(|p| p.parse().ok())
                .expect("a node's port");
            let holds = fields.iter().skip(8).any(|range| {
                let mut ends = range.split('-').map(|n| n.parse::<u16>());
                match (ends.next(), ends.next()) {
                    (Some(Ok(from)), Some(Ok(to))) => (from..=to).contains(&slot),
                    (Some(Ok(only)), None) => only == slot,
                    _ => false,
                }
            });
            if holds {
                return port;
            }
        }
        panic!("no node holds slot {slot}: {nodes}");
    }

    /// The raw value of `key`, asked of the node that holds it.
    pub fn get(&self, key: &str) -> Option<String> {
        let value = cli(self.node_of(key), &["get", key]);
        let value = value.trim_end_matches('\n');
        (!value.is_empty()).then(|| value.to_owned())
    }

    /// Stops the node on `port` at once, as a crash would.
    pub fn kill(&mut self, port: u16) {
        let at = self.at(port);
        if let Some(mut child) = self.children[at].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the node on `port` again, empty: it rejoins the cluster with the slots it held.
    ///
    /// # Panics
    ///
    /// When the node is not ready again within 30 s.
    pub fn restart(&mut self, port: u16) {
        self.kill(port);
        let child = self.spawn(port);
        let at = self.at(port);
        self.children[at] = Some(child);
        wait_for(&format!("node {port} back in the cluster"), || {
            cli(port, &["cluster", "info"]).contains("cluster_state:ok")
        });
    }

    fn at(&self, port: u16) -> usize {
        self.ports
            .iter()
            .position(|p| *p == port)
            .expect("a node of this cluster")
    }

    fn spawn(&self, port: u16) -> Child {
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes", "--cluster-config-file"])
            .arg(self.dir.join(format!("nodes-{port}.conf")))
            .args(["--cluster-node-timeout", "2000"])
            // A node that fails leaves only its own slots unserved, as in a cluster run for
            // availability.
            .args(["--cluster-require-full-coverage", "no"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!("could not start redis-server ({err}): it must be on PATH")
            })
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for port in self.ports.clone() {
            self.kill(port);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `n` ports free now whose cluster bus ports (10,000 above) are free too.
fn free_ports(n: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    while ports.len() < n {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = listener.local_addr().expect("its address").port();
        if port > 55_000 || ports.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            ports.push(port);
        }
    }
    ports
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits up to 30 s for `ready` to say yes, or to give up with an error.
fn try_until(what: &str, mut ready: impl FnMut() -> Result<bool, String>) -> Result<(), String> {
    let start = Instant::now();
    while !ready()? {
        if start.elapsed() > Duration::from_secs(30) {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
