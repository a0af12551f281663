//! The connection a fleet limiter reaches Redis through: one server, or a Redis Cluster.

use std::fmt;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// How a fleet limiter reaches Redis: a single server's redis-rs `ConnectionManager`, or, with the
/// `cluster` feature, a Redis Cluster's `redis::cluster_async::ClusterConnection`.
///
/// Nothing to build by hand: [`RedisLimiter::new`](crate::RedisLimiter::new) and the other
/// constructors take either connection and convert it. Both reconnect by themselves; a cluster
/// connection also follows its keys' slots as they move between nodes. Every bucket is one key and
/// each script touches only that key, so each call goes to the one node that holds its bucket.
///
/// # Examples
///
/// ```no_run
/// use bounded_ratelimit::Quota;
/// use bounded_ratelimit_redis::RedisLimiter;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// // One server (or a primary behind one address):
/// let conn = redis::Client::open("redis://127.0.0.1/")?.get_connection_manager().await?;
/// let partner = RedisLimiter::new(conn, "partner-api", Quota::per_second(50))?;
/// # let _ = partner;
/// # Ok(())
/// # }
/// ```
///
/// A Redis Cluster, with the `cluster` feature:
///
/// ```no_run
/// # #[cfg(feature = "cluster")]
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use bounded_ratelimit::Quota;
/// use bounded_ratelimit_redis::RedisKeyedLimiter;
///
/// let nodes = ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379", "redis://10.0.0.3:6379"];
/// let conn = redis::cluster::ClusterClient::new(nodes)?.get_async_connection().await?;
/// let per_tenant = RedisKeyedLimiter::new(conn, "tenant", Quota::per_second(20))?;
/// per_tenant.acquire("acme").await?; // asks the node that holds "tenant:acme"
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Connection(Kind);

#[derive(Clone)]
enum Kind {
    Server(ConnectionManager),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl From<ConnectionManager> for Connection {
    fn from(conn: ConnectionManager) -> Self {
        Connection(Kind::Server(conn))
    }
}

#[cfg(feature = "cluster")]
#[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
impl From<redis::cluster_async::ClusterConnection> for Connection {
    fn from(conn: redis::cluster_async::ClusterConnection) -> Self {
        Connection(Kind::Cluster(conn))
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Server(_) => f.write_str("Connection::Server"),
            #[cfg(feature = "cluster")]
            Kind::Cluster(_) => f.write_str("Connection::Cluster"),
        }
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.0 {
            Kind::Server(conn) => conn.req_packed_command(cmd),
            #[cfg(feature = "cluster")]
            Kind::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.0 {
            Kind::Server(conn) => conn.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "cluster")]
            Kind::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.0 {
            Kind::Server(conn) => conn.get_db(),
            #[cfg(feature = "cluster")]
            Kind::Cluster(conn) => conn.get_db(),
        }
    }
}
