//! The one integration crate (one link step on 2 cores): the real server on
//! 127.0.0.1:0 against fakes that verify Hawk and behave like syncstorage-rs, and
//! (opt-in, `real`) against the real Firefox Sync server.

#[path = "support/peer.rs"]
mod peer;
mod support;

mod auth;
mod batch;
mod big_pages;
mod cli;
mod collapse;
mod conflicts;
mod errors;
mod exact;
mod fake_node;
mod faults;
mod hostile;
mod ops;
mod properties;
mod real;
mod records;
mod scheduling;
mod security;
mod tls;
mod writes;
