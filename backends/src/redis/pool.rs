//! Connections to the server: a small pool of blocking connections, and how the client's
//! errors become this crate's.
//!
//! Why a pool of sync connections and not one multiplexed async connection: the `Store` trait
//! is blocking, and a multiplexed connection would need a runtime thread per store to drive it.
//! A pool lets N threads each have a request in flight on their own socket, costs nothing when
//! idle, and makes recovery simple: a connection whose request failed for any reason other
//! than a complete error reply from the server (a timeout, a reset, a parse failure) is
//! dropped, never reused. After a read timeout the reply may still arrive later; the client
//! crate counts such replies and skips them, but a reused socket would first wait for the late
//! reply, so the next caller could time out behind the stall. A fresh connection does not.
//! (Hence a pool of our own rather than r2d2's, which keeps any connection whose socket is
//! open.) At most `max_idle` connections are kept. A dead pooled connection (the server
//! restarted) is replaced by a fresh one, so the store recovers by itself once the server is
//! back.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use ::redis::cluster::{ClusterClient, ClusterConnection};
use ::redis::{Client, Cmd, Connection, ConnectionLike, ErrorKind, FromRedisValue, RedisError};

use crate::Error;

/// Where the store's data lives.
pub(crate) enum Target {
    Single(Client),
    /// The client, and the seed nodes' connection settings (for a direct connection to the
    /// node holding the store's slot).
    Cluster(ClusterClient, Vec<::redis::ConnectionInfo>),
}

/// One connection of the pool.
pub(crate) enum Conn {
    Single(Connection),
    Cluster(Box<ClusterConnection>),
}

impl Conn {
    pub(crate) fn as_dyn(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Conn::Single(c) => c,
            Conn::Cluster(c) => &mut **c,
        }
    }

    /// Runs `cmd`, which names no key, on the node holding `slot` (the store's one slot).
    /// A single server is that node.
    pub(crate) fn run_on_slot<T: FromRedisValue>(
        &mut self,
        cmd: &Cmd,
        slot: ::redis::cluster_routing::Slot,
    ) -> ::redis::RedisResult<T> {
        match self {
            Conn::Single(c) => cmd.query(c),
            Conn::Cluster(c) => {
                use ::redis::cluster_routing::{
                    Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
                };
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::with_slot(slot, SlotAddr::Master),
                ));
                let value = c.route_command(cmd, route)?;
                Ok(::redis::from_redis_value(value.extract_error()?)?)
            }
        }
    }
}

pub(crate) struct Pool {
    target: Target,
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
    timeout: Duration,
    /// The server's address without credentials, for error messages.
    pub(crate) server: String,
}

impl Pool {
    pub(crate) fn new(target: Target, server: String, timeout: Duration, max_idle: usize) -> Self {
        Pool {
            target,
            idle: Mutex::new(Vec::new()),
            max_idle,
            timeout,
            server,
        }
    }

    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Conn>> {
        // The list only ever holds whole connections; a panic elsewhere cannot tear it.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn connect(&self) -> ::redis::RedisResult<Conn> {
        match &self.target {
            Target::Single(client) => {
                let c = client.get_connection_with_timeout(self.timeout)?;
                c.set_read_timeout(Some(self.timeout))?;
                c.set_write_timeout(Some(self.timeout))?;
                Ok(Conn::Single(c))
            }
            Target::Cluster(client, _) => Ok(Conn::Cluster(Box::new(client.get_connection()?))),
        }
    }

    /// Runs `f` on a pooled connection, returning the connection to the pool only when `f`
    /// succeeded or failed with a complete reply from the server. For commands that are not
    /// safe to send twice (`DEL` reports what it removed, a lease script acts once).
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut Conn) -> ::redis::RedisResult<T>,
    ) -> crate::Result<T> {
        let pooled = self.idle().pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connect().map_err(|e| self.error(e))?,
        };
        self.finish(f(&mut conn), conn).map_err(|e| self.error(e))
    }

    /// Like [`Pool::with`], for a command that may be sent twice (a read, a `SET`): if a
    /// pooled connection turns out dead (the server restarted since it was last used), the
    /// command is sent once more on a fresh connection instead of failing.
    pub(crate) fn with_retry<T>(
        &self,
        mut f: impl FnMut(&mut Conn) -> ::redis::RedisResult<T>,
    ) -> crate::Result<T> {
        let pooled = self.idle().pop();
        if let Some(mut conn) = pooled {
            match f(&mut conn) {
                Ok(v) => {
                    self.give_back(conn);
                    return Ok(v);
                }
                Err(e) if e.is_connection_dropped() || e.is_io_error() && !e.is_timeout() => {
                    // Dead socket: fall through to a fresh connection.
                }
                Err(e) => return self.finish(Err(e), conn).map_err(|e| self.error(e)),
            }
        }
        let mut conn = self.connect().map_err(|e| self.error(e))?;
        self.finish(f(&mut conn), conn).map_err(|e| self.error(e))
    }

    fn finish<T>(&self, r: ::redis::RedisResult<T>, conn: Conn) -> ::redis::RedisResult<T> {
        match r {
            Ok(v) => {
                self.give_back(conn);
                Ok(v)
            }
            Err(e) => {
                if still_in_step(&e) {
                    self.give_back(conn);
                }
                Err(e)
            }
        }
    }

    fn give_back(&self, conn: Conn) {
        let mut idle = self.idle();
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }

    /// This crate's error for a client error.
    pub(crate) fn error(&self, e: RedisError) -> Error {
        if is_unavailable(&e) {
            Error::Unavailable {
                server: self.server.clone(),
                source: Box::new(e),
            }
        } else {
            Error::Engine {
                engine: "redis",
                path: self.server.clone().into(),
                source: Box::new(e),
            }
        }
    }
}

/// Whether the connection is still aligned with the server after `e`: the server answered
/// the whole request (an error reply, or a reply of another type than expected).
fn still_in_step(e: &RedisError) -> bool {
    match e.kind() {
        ErrorKind::Server(_) => !e.is_cluster_error(),
        ErrorKind::UnexpectedReturnType => true,
        _ => false,
    }
}

fn is_unavailable(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(::redis::ServerErrorKind::ClusterDown)
                | ErrorKind::Server(::redis::ServerErrorKind::BusyLoading)
        )
}
