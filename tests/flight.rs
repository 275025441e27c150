//! Many callers at once (issue 10): single-flight across threads and processes, throttling,
//! prefetch and stale-while-revalidate. One binary, one module per behaviour.

#[path = "flight/background.rs"]
mod background;
#[path = "flight/processes.rs"]
mod processes;
#[path = "flight/single_flight.rs"]
mod single_flight;
#[path = "flight/throttle.rs"]
mod throttle;
