//! [`Wait`]: the future of [`Flights::lead_or_wait_async`], a waker list instead of a runtime.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use super::timer::{wake_at, Alarm};
use super::{lock, Flight, Flights, Role, Ticket};

/// The future of [`Flights::lead_or_wait_async`]: resolves to [`Role::Leader`] at once when
/// nobody computes the key, else to [`Role::Waited`] once the leader's guard is dropped.
/// Dropping it while it waits leaves nothing behind but a waker the leader wakes in vain.
#[must_use = "futures do nothing unless polled"]
pub struct Wait<'a> {
    flights: &'a Flights,
    key: Vec<u8>,
    ticket: Ticket,
    /// The flight being waited for, once the first poll found one.
    flight: Option<Arc<Flight>>,
    /// When the wait gives up, set at the first poll that found a flight.
    deadline: Option<Instant>,
    /// The timer's wake-up at the deadline; dropped (deregistered) with the future.
    alarm: Option<Alarm>,
}

impl std::fmt::Debug for Wait<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wait")
            .field("key", &cacher_store::KeyDisplay::new(&self.key))
            .field("waiting", &self.flight.is_some())
            .finish()
    }
}

impl<'a> Wait<'a> {
    pub(super) fn new(flights: &'a Flights, key: Vec<u8>, ticket: Ticket) -> Self {
        Wait {
            flights,
            key,
            ticket,
            flight: None,
            deadline: None,
            alarm: None,
        }
    }
}

impl<'a> Future for Wait<'a> {
    type Output = Role<'a>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Role<'a>> {
        let this = &mut *self;
        let flight = match &this.flight {
            Some(f) => f.clone(),
            None => match this.flights.join(&this.key, this.ticket, None) {
                Ok(guard) => return Poll::Ready(Role::Leader(guard)),
                Err(flight) => {
                    this.flight = Some(flight.clone());
                    this.deadline = this.flights.deadline();
                    flight
                }
            },
        };
        let mut state = lock(&flight.state);
        if state.finished {
            return Poll::Ready(Role::Waited);
        }
        // Only true while the leader's own future is being polled on this thread: this wait
        // was started from inside the leader's computation.
        if state.running_on == Some(std::thread::current().id()) {
            return Poll::Ready(Role::Reentrant);
        }
        if this.deadline.is_some_and(|d| Instant::now() >= d) {
            this.flights
                .timed_out
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Poll::Ready(Role::TimedOut);
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        drop(state);
        if let (Some(at), None) = (this.deadline, &this.alarm) {
            this.alarm = wake_at(at, cx.waker().clone());
        }
        Poll::Pending
    }
}
