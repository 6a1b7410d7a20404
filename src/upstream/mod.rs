//! The upstream HTTP client, shared by the Token Server and storage-node clients: the
//! rustls configuration with its trust roots and SPKI pins ([`tls`]), the ureq agent and
//! its connector chain ([`agent`]), name lookups with a cache and the call's deadline
//! ([`resolve`]), and what a failed call met ([`failure`]).

pub(crate) mod agent;
pub(crate) mod failure;
pub(crate) mod resolve;
pub(crate) mod tls;
