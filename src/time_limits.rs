//! Every time limit, in one place.
//!
//! **The ones an operator tunes are settings** (defaults and ranges in the settings table,
//! `config/table.rs`; what each bounds in `man/syncto.ini.5`):
//!
//! | setting | bounds |
//! |---|---|
//! | `request_head_timeout_seconds` | a request line and its headers |
//! | `request_body_timeout_seconds` | a request body |
//! | `keepalive_timeout_seconds` | an idle connection between two requests |
//! | `response_timeout_seconds` | a client taking a whole answer |
//! | `queue_timeout_milliseconds` | a request waiting for a worker |
//! | `batch_timeout_seconds` | the sub-requests of one batch |
//! | `upstream_connect_timeout_seconds` | a connection to the Token Server or a Sync node |
//! | `upstream_timeout_seconds` | one upstream call, lookup to last byte |
//! | `token_server_heartbeat_timeout_seconds` | the Token Server check of `__heartbeat__` |
//! | `write_conflict_budget_ms` | waiting for and repeating after the node's write conflicts |
//! | `cache_credentials_ttl_seconds` | how long credentials are kept |
//!
//! **The others are fixed**, below, each with why it has its value: they follow from the
//! protocol, from how a well-behaved client or server acts, or from the cost of a thread,
//! not from a deployment. The listener crate keeps its own two (it depends on nothing of
//! Syncto): a closed connection lingers 2 s to deliver its last answer
//! (`socket.rs`, `LINGER`), and an idle connection thread waits 5 s for another
//! connection before it exits (`util/task_pool.rs`, `IDLE_FOR`).

use std::time::Duration;

/// Time between one write's answer and the next write of the same user to the same
/// collection: the Sync node refuses two writes of a user in the same 10 ms tick, so one
/// tick, plus a millisecond for rounding.
pub const WRITE_SPACING: Duration = Duration::from_millis(11);

/// A GET that failed on a connection within this time is sent again: a failure that
/// early is a pooled connection the server had closed, not a slow server.
pub const STORAGE_RETRY_WITHIN: Duration = Duration::from_secs(1);

/// How long after its last answer a pooled upstream connection is taken without the
/// liveness probe by a repeatable call. Servers that speak on an idle connection before
/// closing it (a stray `408`) do so after seconds of silence, not within this.
pub const POOLED_CONNECTION_TRUSTED_FOR: Duration = Duration::from_secs(1);

/// How long a Sync node's `/info/configuration` (its limits on one write) is kept: the
/// limits change with the node's deployment, not from one request to the next.
pub const NODE_CONFIGURATION_KEPT_FOR: Duration = Duration::from_secs(3600);

/// How long syncstorage-rs's default limits stand in for a node that did not answer its
/// configuration, before it is asked again.
pub const NODE_DEFAULTS_FOR: Duration = Duration::from_secs(60);

/// How long a looked-up upstream name is reused, as curl does.
pub const RESOLVE_TTL: Duration = Duration::from_secs(60);

/// How long a Token Server refusal of a credential (a 401) is answered from memory (never
/// longer than the credentials TTL): one bad token sent again and again costs one call,
/// and a token the user just fixed is tried again soon.
pub const REFUSAL_TTL: Duration = Duration::from_secs(30);

/// How long a user whose credentials the Token Server accepted counts as known to work, so
/// that the per-address budget of refused exchanges never slows it: about the life of one
/// OAuth token, after which its next exchange shows whether it still works.
pub const USER_KNOWN_TO_WORK_FOR: Duration = Duration::from_secs(3600);

/// How long a Token Server check's result answers `__heartbeat__`: short enough for a load
/// balancer polling every few seconds to see a change at its next poll.
pub const HEARTBEAT_FRESH: Duration = Duration::from_secs(1);

/// How long a worker may take to write a small answer. Only a client that sends requests
/// without reading the answers fills its send buffer; it is disconnected rather than
/// allowed to hold a worker.
pub const WORKER_SEND_LIMIT: Duration = Duration::from_secs(1);

/// How long a worker writes a larger answer (a page of records) before it leaves the rest
/// to a thread of its own. A client that reads as fast as the answer is written (a local
/// reverse proxy, a client on a fast network) gets it all from the worker, whose buffers
/// are then reused at once; one that reads slowly holds a worker this long at most.
pub const WORKER_WRITES_LARGE_FOR: Duration = Duration::from_millis(20);

/// How long the shedder writes a 503 before it leaves the rest to a thread of its own
/// (only a client that does not read its answers has no room for it).
pub const SHEDDER_WRITES_FOR: Duration = Duration::from_millis(10);

/// How long the shedder keeps checking the queue on its own after it was last found empty,
/// before it sleeps until a request is queued.
pub const SHEDDER_AWAKE: Duration = Duration::from_secs(3);
