//! The listener's integration tests: real sockets on 127.0.0.1 (and a unix
//! socket), what crosses the wire asserted byte for byte.

mod heads;
mod hostile;
mod requests;
mod slow;
mod support;
mod upstream;
