//! Many callers at once (issue 10): single-flight across threads and processes, throttling,
//! prefetch and stale-while-revalidate. One binary, one module per behaviour.

#[path = "flight/background.rs"]
mod background;
#[path = "flight/children.rs"]
mod children;
#[path = "flight/processes.rs"]
mod processes;
/// The private `redis-server` of each test, shared with cacher-store's Redis tests.
#[cfg(feature = "redis")]
#[allow(
    dead_code,
    reason = "the helper serves cacher-store's cluster tests too"
)]
#[path = "../backends/tests/redis_store/server.rs"]
mod redis_server;
#[cfg(feature = "redis")]
#[path = "flight/redis.rs"]
mod shared_redis;
#[path = "flight/single_flight.rs"]
mod single_flight;
#[path = "flight/throttle.rs"]
mod throttle;
