//! Sync answer headers → Kinto answer headers.

use crate::message::Response;
use crate::sync15::{Reply, timestamp};

/// The headers of a Sync answer a Kinto client sees, on success and error alike:
/// `Cache-Control: no-cache`; `X-Last-Modified` as `ETag` (quoted ms) and `Last-Modified`;
/// `X-Weave-Quota-Remaining` as `Quota-Remaining`, `X-Weave-Alert` as `Alert`,
/// `X-Weave-Backoff` or `X-Backoff` as `Backoff`; `Retry-After` as it is.
pub(crate) fn translate_headers(r: &mut Response, reply: &Reply) {
    r.set("Cache-Control", "no-cache");
    if let Some(ms) = reply.last_modified {
        r.set("ETag", format!("\"{ms}\""));
        r.set("Last-Modified", timestamp::http_date(ms));
    }
    if let Some(q) = &reply.quota_remaining {
        r.set("Quota-Remaining", q.clone());
    }
    if let Some(a) = &reply.alert {
        crate::kinto::alert::offer(r, crate::kinto::alert::Alert::SyncNode(a.clone()));
    }
    if let Some(b) = &reply.backoff {
        r.set("Backoff", b.clone());
    }
    if let Some(ra) = &reply.retry_after {
        r.set("Retry-After", ra.clone());
    }
}
