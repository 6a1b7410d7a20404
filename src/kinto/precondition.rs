//! What a Kinto precondition (`If-Match`, `If-None-Match`) decides for a record, in one
//! place: the Sync headers of a read, and [`decide`] for a write.
//!
//! Kinto compares integer milliseconds for equality; Sync stamps in 10 ms ticks and only
//! knows "modified since" and "not modified since". So a value that is not a whole tick can
//! never be current, and where Sync's comparison is weaker than equality the record is read
//! first and the write then made conditional on what was read, so that a change in between
//! still fails with 412.
//!
//! [`decide`] is pure: given the precondition and what is known of the record, it says
//! whether to write and under which Sync condition, or what to answer instead. Both write
//! paths use it, the one-by-one path (`records.rs`, which reads one record) and the
//! collapsed path of a batch (`collapse.rs`, which reads every record of a segment with one
//! call), so their answers agree by construction: the same status, the same
//! `details.existing`, the same origin of the answer's headers.

use super::query::Precondition;
use crate::sync15::timestamp::{TICK_MS, floor_tick, ms_to_seconds};
use serde_json::Value;

/// A record write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// `PUT`: create or replace.
    Put,
    /// `DELETE`.
    Delete,
}

/// What is known of the record when deciding.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Known<'a> {
    /// Not read (yet).
    Unread,
    /// Read: it does not exist.
    Absent,
    /// Read: its `last_modified` (ms) and its Kinto JSON.
    Present(u64, &'a Value),
}

impl<'a> Known<'a> {
    /// From the answer of a one-record read.
    pub(crate) fn of(record: Option<&'a (u64, Value)>) -> Known<'a> {
        match record {
            Some((lm, value)) => Known::Present(*lm, value),
            None => Known::Absent,
        }
    }
}

/// The condition the storage node checks on a write of one record
/// (`X-If-Unmodified-Since` against the record's own timestamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Since {
    /// None: the write happens whatever the record is.
    Any,
    /// `0`: only if the record does not exist (create-only).
    Absent,
    /// Only if the record is not newer than this (ms, a whole tick).
    At(u64),
}

impl Since {
    /// The Sync header carrying the condition, if any.
    pub(crate) fn header(self) -> Option<(&'static str, String)> {
        match self {
            Since::Any => None,
            Since::Absent => Some(("X-If-Unmodified-Since", "0".to_owned())),
            Since::At(ms) => Some(("X-If-Unmodified-Since", seconds(ms))),
        }
    }
}

/// What to do with a write.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Decision<'a> {
    /// Read the record first, then decide again with what was read.
    Read,
    /// Send the write under this condition; `creates`: the answer is 201 (else 200).
    Send {
        /// The condition the node checks on the record.
        since: Since,
        /// Whether the write creates the record (answer 201).
        creates: bool,
    },
    /// 412 decided here from the record read: `existing` when the record exists. No
    /// upstream answer's headers (no write was sent).
    Modified(Option<&'a Value>),
    /// 404 decided here: an `If-Match` DELETE of a record that does not exist. No upstream
    /// answer's headers.
    Missing,
    /// The node's own 412 to a create-only write of a record that exists, known ahead:
    /// `existing` is the record, and the answer carries the headers of the node's 412
    /// (`ETag` = the record's `last_modified`).
    Exists(u64, &'a Value),
    /// The node's own 404 to a DELETE of a record that does not exist, known ahead: the
    /// answer carries the headers of the node's 404 (`Cache-Control`, no `ETag`).
    Gone,
}

/// The one decision table of record writes.
///
/// | write | precondition | record | decision |
/// |---|---|---|---|
/// | PUT | none | any | send, 200 |
/// | PUT | `If-None-Match: *` | absent or unread | send create-only, 201 |
/// | PUT | `If-None-Match: *` | present | the node's 412 + existing |
/// | PUT, DELETE | `If-Match: "x"` | unread | read first |
/// | PUT | `If-Match: "x"` | absent | 412, no existing |
/// | PUT, DELETE | `If-Match: "x"` | at x | send if still at x, 200 |
/// | PUT, DELETE | `If-Match: "x"` | not at x | 412 + existing |
/// | PUT, DELETE | `If-None-Match: "x"` | unread | read first |
/// | PUT, DELETE | `If-None-Match: "x"` | at x | 412 + existing |
/// | PUT, DELETE | `If-None-Match: "x"` | at y ≠ x | send if still at y, 200 |
/// | PUT | `If-None-Match: "x"` | absent | send create-only, 201 |
/// | DELETE | none | absent | the node's 404 |
/// | DELETE | none | present or unread | send, 200 |
/// | DELETE | `If-None-Match: *` | present | the node's 412 + existing |
/// | DELETE | `If-None-Match: *` | absent or unread | send create-only (the node answers 404, or 412 for an expired record it still holds) |
/// | DELETE | `If-Match: "x"` | absent | 404 |
/// | DELETE | `If-None-Match: "x"` | absent | send create-only (as above) |
///
/// A value between two ticks is never a record's `last_modified`, so `If-Match` with it
/// always fails and `If-None-Match` with it always holds.
pub(crate) fn decide<'a>(method: Method, pre: Precondition, known: Known<'a>) -> Decision<'a> {
    let send = |since, creates| Decision::Send { since, creates };
    match (pre, known) {
        (Precondition::Match(_) | Precondition::NoneMatch(_), Known::Unread) => Decision::Read,
        (Precondition::None, Known::Absent) if method == Method::Delete => Decision::Gone,
        (Precondition::None, _) => send(Since::Any, false),
        (Precondition::Absent, Known::Present(lm, existing)) => Decision::Exists(lm, existing),
        (Precondition::Absent, _) => send(Since::Absent, method == Method::Put),
        (Precondition::Match(x), Known::Present(lm, _)) if lm == x => send(Since::At(x), false),
        (Precondition::Match(_), Known::Present(_, existing)) => Decision::Modified(Some(existing)),
        // Kinto: 412 to an If-Match PUT of a missing record, 404 to a DELETE.
        (Precondition::Match(_), _) => match method {
            Method::Put => Decision::Modified(None),
            Method::Delete => Decision::Missing,
        },
        (Precondition::NoneMatch(x), Known::Present(lm, existing)) if lm == x => {
            Decision::Modified(Some(existing))
        }
        (Precondition::NoneMatch(_), Known::Present(lm, _)) => send(Since::At(lm), false),
        (Precondition::NoneMatch(_), _) => send(Since::Absent, method == Method::Put),
    }
}

/// The Sync headers of a read (`GET` of a record or a list) under `pre`: `If-Match: "x"`
/// → `X-If-Unmodified-Since: x`; `If-None-Match: "x"` on a whole tick →
/// `X-If-Modified-Since: x` (a value between two ticks is never current: no 304 possible);
/// `If-None-Match: *` → `X-If-Unmodified-Since: 0`. Sync's answers are then weaker than
/// Kinto's equality, which the callers check (a 304 for another timestamp, a 200 at
/// another timestamp under `If-Match`).
pub(crate) fn read_headers(pre: Precondition) -> Vec<(&'static str, String)> {
    match pre {
        Precondition::NoneMatch(x) if is_tick(x) => vec![("X-If-Modified-Since", seconds(x))],
        Precondition::Match(x) => vec![("X-If-Unmodified-Since", seconds(x))],
        Precondition::Absent => vec![("X-If-Unmodified-Since", "0".to_owned())],
        _ => vec![],
    }
}

/// The timestamp a precondition names (0 for none or `*`).
pub(crate) fn named(pre: Precondition) -> u64 {
    match pre {
        Precondition::Match(x) | Precondition::NoneMatch(x) => x,
        Precondition::None | Precondition::Absent => 0,
    }
}

/// A Sync timestamp header value of a whole tick.
fn seconds(ms: u64) -> String {
    ms_to_seconds(floor_tick(ms))
}

fn is_tick(ms: u64) -> bool {
    ms % TICK_MS == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every (method, precondition, record) against the table of [`decide`]: the record
    /// is at 1000 ms; preconditions name 1000 (its value), 990 (another tick), 1001 (between
    /// two ticks).
    #[test]
    fn the_whole_decision_table() {
        let rec = json!({"id": "r", "last_modified": 1000});
        let present = Known::Present(1000, &rec);
        let pres = [
            ("none", Precondition::None),
            ("*", Precondition::Absent),
            ("match 1000", Precondition::Match(1000)),
            ("match 990", Precondition::Match(990)),
            ("match 1001", Precondition::Match(1001)),
            ("none-match 1000", Precondition::NoneMatch(1000)),
            ("none-match 990", Precondition::NoneMatch(990)),
            ("none-match 1001", Precondition::NoneMatch(1001)),
        ];
        let knowns = [
            ("unread", Known::Unread),
            ("absent", Known::Absent),
            ("present", present),
        ];
        let mut table = String::new();
        for (m, method) in [("PUT", Method::Put), ("DELETE", Method::Delete)] {
            for (p, pre) in pres {
                for (k, known) in knowns {
                    let d = match decide(method, pre, known) {
                        Decision::Read => "read".to_owned(),
                        Decision::Send { since, creates } => {
                            let since = match since {
                                Since::Any => "any".to_owned(),
                                Since::Absent => "0".to_owned(),
                                Since::At(ms) => ms.to_string(),
                            };
                            format!("send {since}{}", if creates { " 201" } else { "" })
                        }
                        Decision::Modified(Some(e)) => {
                            assert_eq!(e, &rec);
                            "412 existing".to_owned()
                        }
                        Decision::Modified(None) => "412".to_owned(),
                        Decision::Missing => "404".to_owned(),
                        Decision::Exists(lm, e) => {
                            assert_eq!(e, &rec);
                            format!("node 412 existing etag {lm}")
                        }
                        Decision::Gone => "node 404".to_owned(),
                    };
                    table.push_str(&format!("{m} {p} {k}: {d}\n"));
                }
            }
        }
        let want = "\
PUT none unread: send any
PUT none absent: send any
PUT none present: send any
PUT * unread: send 0 201
PUT * absent: send 0 201
PUT * present: node 412 existing etag 1000
PUT match 1000 unread: read
PUT match 1000 absent: 412
PUT match 1000 present: send 1000
PUT match 990 unread: read
PUT match 990 absent: 412
PUT match 990 present: 412 existing
PUT match 1001 unread: read
PUT match 1001 absent: 412
PUT match 1001 present: 412 existing
PUT none-match 1000 unread: read
PUT none-match 1000 absent: send 0 201
PUT none-match 1000 present: 412 existing
PUT none-match 990 unread: read
PUT none-match 990 absent: send 0 201
PUT none-match 990 present: send 1000
PUT none-match 1001 unread: read
PUT none-match 1001 absent: send 0 201
PUT none-match 1001 present: send 1000
DELETE none unread: send any
DELETE none absent: node 404
DELETE none present: send any
DELETE * unread: send 0
DELETE * absent: send 0
DELETE * present: node 412 existing etag 1000
DELETE match 1000 unread: read
DELETE match 1000 absent: 404
DELETE match 1000 present: send 1000
DELETE match 990 unread: read
DELETE match 990 absent: 404
DELETE match 990 present: 412 existing
DELETE match 1001 unread: read
DELETE match 1001 absent: 404
DELETE match 1001 present: 412 existing
DELETE none-match 1000 unread: read
DELETE none-match 1000 absent: send 0
DELETE none-match 1000 present: 412 existing
DELETE none-match 990 unread: read
DELETE none-match 990 absent: send 0
DELETE none-match 990 present: send 1000
DELETE none-match 1001 unread: read
DELETE none-match 1001 absent: send 0
DELETE none-match 1001 present: send 1000
";
        assert_eq!(table, want);
    }

    #[test]
    fn the_condition_of_a_send_as_a_sync_header() {
        assert_eq!(Since::Any.header(), None);
        assert_eq!(
            Since::Absent.header(),
            Some(("X-If-Unmodified-Since", "0".to_owned()))
        );
        assert_eq!(
            Since::At(1_437_747_842_570).header(),
            Some(("X-If-Unmodified-Since", "1437747842.57".to_owned()))
        );
    }

    #[test]
    fn read_headers_per_precondition() {
        let h = |p| read_headers(p);
        assert_eq!(h(Precondition::None), vec![]);
        assert_eq!(
            h(Precondition::Absent),
            vec![("X-If-Unmodified-Since", "0".to_owned())]
        );
        assert_eq!(
            h(Precondition::Match(1230)),
            vec![("X-If-Unmodified-Since", "1.23".to_owned())]
        );
        assert_eq!(
            h(Precondition::NoneMatch(1230)),
            vec![("X-If-Modified-Since", "1.23".to_owned())]
        );
        // Between two ticks: never current, so no 304 to ask for.
        assert_eq!(h(Precondition::NoneMatch(1231)), vec![]);
    }
}
