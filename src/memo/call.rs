//! Per-call control of a memoized function: [`Call`] and its [`Mode`].

use std::time::Duration;

/// How one call uses the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// Return a fresh cached value, or compute, store and return.
    #[default]
    Normal,
    /// Compute; neither read nor write the cache.
    Bypass,
    /// Compute and overwrite the cached value.
    Refresh,
    /// Return the cached value or an [`Error::Miss`](crate::Error::Miss); never compute.
    CacheOnly,
}

/// Per-call options: a [`Mode`] and an optional TTL for the value this call stores.
///
/// ```
/// use cacher::Call;
/// use std::time::Duration;
/// let opts = Call::refresh().ttl(Duration::from_secs(60));
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Call {
    pub(crate) mode: Mode,
    pub(crate) ttl: Option<Duration>,
}

impl Call {
    /// Normal lookup-or-compute.
    pub fn normal() -> Self {
        Call::default()
    }
    /// Compute without reading or writing the cache.
    pub fn bypass() -> Self {
        Call {
            mode: Mode::Bypass,
            ..Call::default()
        }
    }
    /// Compute and overwrite.
    pub fn refresh() -> Self {
        Call {
            mode: Mode::Refresh,
            ..Call::default()
        }
    }
    /// Only read the cache; a miss is [`Error::Miss`](crate::Error::Miss).
    pub fn cache_only() -> Self {
        Call {
            mode: Mode::CacheOnly,
            ..Call::default()
        }
    }
    /// The value stored by this call expires `ttl` after it is written.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
    /// The call's mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }
}

/// Where one call's result came from, for [`Memo::call_with_status`](crate::Memo::call_with_status)
/// and the `NAME_with_status` sibling of a `#[memoize]` function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// Read from the cache; the function did not run.
    Hit,
    /// The function ran: nothing fresh was cached, the value was stored as another type, or
    /// the call asked for [`Mode::Bypass`] or [`Mode::Refresh`].
    Miss,
}

impl Status {
    /// True for [`Status::Hit`].
    pub fn is_hit(self) -> bool {
        self == Status::Hit
    }
}
