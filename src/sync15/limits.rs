//! How much one multi-record write may carry on a storage node: its `GET
//! /info/configuration`, read once per node and kept for an hour.
//!
//! Over a limit the node does not fail gracefully everywhere: a body over
//! `max_request_bytes` is a 400 for the whole POST, records past
//! `max_post_records` or `max_post_bytes` come back in `failed`. So the writes are cut
//! to fit before they are sent. A node that does not answer the configuration (an old
//! server, an outage) gets the defaults of syncstorage-rs, for a minute before asking
//! again. Any user's credentials may ask: the limits are the node's, not the user's.
//!
//! `ids=` lists are not in the configuration: syncstorage-rs takes at most
//! [`MAX_IDS`], hard-coded.

use crate::concurrency::lock;
use crate::time_limits::{NODE_CONFIGURATION_KEPT_FOR, NODE_DEFAULTS_FOR};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Most ids in one `ids=` list (`GET` or `DELETE` of a collection): fixed by the node,
/// not announced.
pub const MAX_IDS: usize = 100;

/// Most nodes remembered; past it the oldest entry goes.
const MAX_NODES: usize = 256;

/// A node's limits on one POST of records (bytes count payloads, except
/// `max_request_bytes`, the whole body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Records in one POST.
    pub max_post_records: usize,
    /// Payload bytes in one POST, all records together.
    pub max_post_bytes: usize,
    /// Bytes of one request body.
    pub max_request_bytes: usize,
    /// Payload bytes of one record.
    pub max_record_payload_bytes: usize,
}

impl Default for Limits {
    /// syncstorage-rs's defaults.
    fn default() -> Limits {
        Limits {
            max_post_records: 100,
            max_post_bytes: 2_621_440,
            max_request_bytes: 2_625_536,
            max_record_payload_bytes: 2_621_440,
        }
    }
}

impl Limits {
    /// From the body of `GET /info/configuration`; a limit missing, zero or not a number
    /// keeps its default. `None` when the body is not a JSON object.
    pub fn parse(body: &[u8]) -> Option<Limits> {
        let doc: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).ok()?;
        let read = |name: &str, default: usize| {
            doc.get(name)
                .and_then(serde_json::Value::as_u64)
                .filter(|n| *n > 0)
                .map_or(default, |n| usize::try_from(n).unwrap_or(usize::MAX))
        };
        let d = Limits::default();
        Some(Limits {
            max_post_records: read("max_post_records", d.max_post_records),
            max_post_bytes: read("max_post_bytes", d.max_post_bytes),
            max_request_bytes: read("max_request_bytes", d.max_request_bytes),
            max_record_payload_bytes: read("max_record_payload_bytes", d.max_record_payload_bytes),
        })
    }
}

/// The limits of every node seen, by origin (`scheme://host:port`). Each critical section
/// is one lookup, insert or removal.
#[derive(Default)]
pub struct Known {
    nodes: Mutex<HashMap<String, (Instant, Limits)>>,
}

impl Known {
    /// The limits of the node at `origin`, if known and fresh.
    pub fn get(&self, origin: &str) -> Option<Limits> {
        let nodes = lock(&self.nodes);
        nodes
            .get(origin)
            .filter(|(until, _)| Instant::now() < *until)
            .map(|(_, l)| *l)
    }

    /// Remember the node's limits: `answered` (kept an hour), or the defaults when it did
    /// not answer (kept a minute).
    pub fn put(&self, origin: &str, answered: Option<Limits>) -> Limits {
        let (limits, kept) = match answered {
            Some(l) => (l, NODE_CONFIGURATION_KEPT_FOR),
            None => (Limits::default(), NODE_DEFAULTS_FOR),
        };
        let mut nodes = lock(&self.nodes);
        if nodes.len() >= MAX_NODES && !nodes.contains_key(origin) {
            let now = Instant::now();
            nodes.retain(|_, (until, _)| *until > now);
            if nodes.len() >= MAX_NODES {
                let oldest = nodes
                    .iter()
                    .min_by_key(|(_, (until, _))| *until)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    nodes.remove(&k);
                }
            }
        }
        nodes.insert(origin.to_owned(), (Instant::now() + kept, limits));
        limits
    }

    /// Nodes remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.nodes).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_of_syncstorage_rs() {
        // As the real node answers (0.23.3).
        let body = br#"{"max_post_bytes":2621440,"max_post_records":100,"max_record_payload_bytes":2621440,"max_request_bytes":2625536,"max_total_bytes":262144000,"max_total_records":10000,"max_quota_limit":0}"#;
        assert_eq!(Limits::parse(body), Some(Limits::default()));
        let small = br#"{"max_post_records":5,"max_post_bytes":1000,"max_request_bytes":2000,"max_record_payload_bytes":300}"#;
        assert_eq!(
            Limits::parse(small),
            Some(Limits {
                max_post_records: 5,
                max_post_bytes: 1000,
                max_request_bytes: 2000,
                max_record_payload_bytes: 300,
            })
        );
        // Missing, zero or nonsense: the default of that limit.
        let odd = br#"{"max_post_records":0,"max_post_bytes":"big","max_request_bytes":-1}"#;
        assert_eq!(Limits::parse(odd), Some(Limits::default()));
        assert_eq!(Limits::parse(b"[]"), None);
        assert_eq!(Limits::parse(b"<html>"), None);
    }

    #[test]
    fn nodes_are_remembered_within_a_bound() {
        let known = Known::default();
        assert_eq!(known.get("http://a:1"), None);
        let small = Limits {
            max_post_records: 5,
            ..Limits::default()
        };
        assert_eq!(known.put("http://a:1", Some(small)), small);
        assert_eq!(known.get("http://a:1"), Some(small));
        assert_eq!(known.put("http://b:1", None), Limits::default());
        assert_eq!(known.get("http://b:1"), Some(Limits::default()));
        for i in 0..2 * MAX_NODES {
            known.put(&format!("http://n{i}:1"), None);
        }
        assert_eq!(known.len(), MAX_NODES);
        // A node remembered again, when full, takes no other's place.
        known.put(&format!("http://n{}:1", 2 * MAX_NODES - 1), None);
        assert_eq!(known.len(), MAX_NODES);
    }
}
