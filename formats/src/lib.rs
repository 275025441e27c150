//! Value formats for cacher: serde values to bytes and back (skeleton; see issue 3).
#![deny(unsafe_code)]
