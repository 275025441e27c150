//! RedisStore against real `redis-server` processes, each test with its own (see
//! `redis_store/server.rs`): the conformance kit, framing and limits, native expiry, faults,
//! credentials, leases, invalidation of a memory tier, and Redis Cluster.

#![cfg(all(feature = "redis", feature = "testkit"))]

mod server;

mod cluster;
mod conformance;
mod faults;
mod invalidation;
mod lease;
mod store;
#[cfg(feature = "redis-tls")]
mod tls;

pub use server::unique_prefix;
