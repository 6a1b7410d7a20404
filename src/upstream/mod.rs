//! The upstream HTTP client, shared by the Token Server and storage-node clients: the
//! rustls configuration with its trust roots and SPKI pins ([`tls`]), the ureq agent and
//! its connector chain ([`agent`]), name lookups with a cache and the call's deadline
//! ([`resolve`]), and what a failed call met ([`failure`]).
//!
//! Only the server's workers call upstream: their number bounds the upstream calls in
//! flight and the threads that wait on them. A worker marks its thread
//! ([`mark_worker_thread`]); the Token Server and storage clients check the mark
//! ([`on_worker_thread`]) in debug builds, so that a request the service wrongly
//! classifies as answerable on its connection's thread fails the tests instead of calling
//! upstream there, unbounded.

pub(crate) mod agent;
pub(crate) mod failure;
pub(crate) mod resolve;
pub(crate) mod tls;

use std::cell::Cell;

thread_local! {
    static WORKER: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as one of the server's workers, for good.
pub(crate) fn mark_worker_thread() {
    WORKER.set(true);
}

/// Whether the calling thread is one of the server's workers (the only threads that may
/// call upstream).
pub(crate) fn on_worker_thread() -> bool {
    WORKER.get()
}
