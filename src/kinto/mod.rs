//! What Kinto clients see: routing, the records endpoints, batch,
//! hello/heartbeat, CORS and the error type.
//!
//! [`handle`] serves one request; `dispatch` routes and runs it, and is what the batch
//! endpoint runs each sub-request through, so they take exactly the same code.

pub(crate) mod alert;
pub(crate) mod batch;
pub(crate) mod body;
pub(crate) mod collapse;
pub(crate) mod cors;
pub(crate) mod eos;
pub(crate) mod error;
pub(crate) mod hello;
pub(crate) mod precondition;
pub mod query;
pub(crate) mod records;
pub(crate) mod route;
pub(crate) mod translate;

use crate::VERSION;
use crate::app::{App, CallError, MAX_TOKEN_CALLS, Memo};
use crate::auth;
use crate::auth::{Identity, Scheme};
use crate::message::{Request, Response};
use crate::server::{self, Class, Lane, Refusal, Service};
use crate::sync15;
use error::{Error, Parts};
use route::{Route, Routed, check_host, redirect, route};
use std::hash::{BuildHasher, Hasher};
use std::time::SystemTime;

/// The listener serves the Kinto protocol.
impl Service for App {
    /// With `log_user_ids = hashed`, the bucket segment (a user's key id or client state, or
    /// anything else but `syncto`) becomes `hmac:` and the user's tag in the statsd `users`
    /// set, so that log lines and metrics name a user alike without naming the account.
    fn log_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        if !self.config.log_user_ids_hashed {
            return std::borrow::Cow::Borrowed(path);
        }
        route::hide_bucket(path, |bucket| {
            let scheme = if auth::is_key_id(bucket) {
                auth::Scheme::Bearer
            } else {
                auth::Scheme::BrowserId
            };
            format!("hmac:{}", self.cache.tag(scheme, bucket))
        })
    }

    /// By [`work`], the decision `dispatch` follows: only what needs an upstream goes to a
    /// worker, in its lane (its account or token, and what it writes: see `lane`).
    fn classify(&self, req: &Request<'_>) -> Class {
        let route = match route(req.path) {
            Ok(Routed::To(route)) => route,
            _ => return Class::Here,
        };
        match work(self, req, &route) {
            Work::Local | Work::Refused(_) => Class::Here,
            Work::Upstream { user, writes } => Class::Worker(lane(self, user, writes)),
        }
    }

    fn handle(&self, req: &Request<'_>) -> Response {
        handle(self, req)
    }

    /// A Kinto error document; with CORS headers when the request was read.
    fn refuse(&self, req: Option<&Request<'_>>, why: Refusal) -> Response {
        let retry_after_seconds = self.config.retry_after_seconds;
        let document = |status, errno, message: &'static str, retry_after| {
            Parts {
                status,
                errno: Some(errno),
                message: message.into(),
                details: None,
                retry_after,
                reply: None,
            }
            .into_response(retry_after_seconds)
        };
        let mut resp = match why {
            Refusal::BodyTooLarge => error(self, Error::TooLarge(self.config.max_body_bytes)),
            Refusal::BodyTimeout => document(
                408,
                107,
                "The request body was not received in time.",
                false,
            ),
            Refusal::BodyUnreadable => document(
                400,
                107,
                "The request body could not be read: malformed chunked encoding, or the \
                 connection ended before its end.",
                false,
            ),
            Refusal::Overloaded => document(503, 201, error::OVERLOADED, true),
            Refusal::TooManyConnections => {
                document(503, 201, "Too many connections, please retry later.", true)
            }
            Refusal::Panicked => Error::Internal.parts().into_response(retry_after_seconds),
            Refusal::Malformed(status, reason) => document(status, 107, reason, false),
        };
        if let Some(req) = req {
            cors::decorate(&self.config, req, None, &mut resp);
        }
        resp
    }
}

/// Serve one request (top level: adds CORS and the `backoff` setting).
pub fn handle(app: &App, req: &Request<'_>) -> Response {
    let mut memo = memo_for(app, req);
    let (mut resp, route) = match check_host(req) {
        Ok(()) => eos::guard(&app.config, req.method, req.path, SystemTime::now(), || {
            dispatch(app, req, &mut memo)
        }),
        Err(e) => (error(app, e), None),
    };
    cors::decorate(&app.config, req, route.as_ref(), &mut resp);
    if let Some(b) = app.config.backoff {
        resp.set("Backoff", b.to_string());
    }
    resp
}

/// The memo of a request (a whole batch): credentials looked up, Token Server calls made,
/// and the client's address, which Token Server refusals are charged to.
pub(crate) fn memo_for(app: &App, req: &Request<'_>) -> Memo {
    Memo::for_client(crate::forwarded::client(
        &app.config.trusted_proxies,
        req.peer,
        req.headers,
    ))
}

/// Route and run a request; errors become Kinto error documents.
pub(crate) fn dispatch<'r>(
    app: &App,
    req: &Request<'r>,
    memo: &mut Memo,
) -> (Response, Option<Route<'r>>) {
    let route = match route(req.path) {
        Ok(Routed::To(r)) => r,
        Ok(Routed::Redirect(to)) => return (redirect(app, req, &to), None),
        Err(e) => return (error(app, e), None),
    };
    let resp = answer(app, req, &route, || match work(app, req, &route) {
        Work::Refused(e) => Err(e),
        Work::Local if req.method == "OPTIONS" => cors::preflight(&app.config, req, &route),
        Work::Local | Work::Upstream { .. } => serve(app, req, &route, memo),
    });
    (resp, Some(route))
}

/// The answer to a routed request served by `run`, as every request gets it: counted in
/// the view metrics, the `X-Client-State` deprecation `Alert` on a user's data, an error
/// as its Kinto document (with `Allow`, or the 401 challenge). The batch's collapsed
/// writes answer each of their sub-requests through it too.
pub(crate) fn answer(
    app: &App,
    req: &Request<'_>,
    route: &Route<'_>,
    run: impl FnOnce() -> Result<Response, Error>,
) -> Response {
    if app.metrics.is_enabled() {
        let method = crate::metrics::method_name(req.method);
        app.metrics
            .incr(&format!("view.{}.{method}", route.service()));
        count_authn_type(app, req, route);
    }
    let mut result = run();
    deprecated_client_state(app, req, route, &mut result);
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => {
            let allow = match &e {
                Error::MethodNotAllowed(a) => Some(*a),
                _ => None,
            };
            let mut r = error(app, e);
            if let Some(a) = allow {
                r.header("Allow", a);
            }
            r
        }
    };
    // Every 401 (no or bad credentials here, or refused upstream) names the scheme to use.
    if resp.status == 401 {
        resp.set(
            "WWW-Authenticate",
            auth::challenge(req.header("authorization")),
        );
    }
    resp
}

/// What a routed request needs, decided from the request alone before anything runs:
/// the one home of "does this request go to a worker". `dispatch` follows it (a refusal is
/// answered without running the endpoint), and so does the listener (only `Upstream` work
/// goes to a worker), so the two cannot disagree; in debug builds the upstream clients
/// check that they run on a worker.
pub(crate) enum Work<'a> {
    /// Answered from the request alone: preflights, hello, `__lbheartbeat__`,
    /// `__version__`.
    Local,
    /// Refused before anything runs: a method the endpoint does not answer, a write the
    /// operator did not enable, credentials missing or malformed.
    Refused(Error),
    /// May call the Token Server or a Sync node: on a worker.
    Upstream {
        /// Whom it acts for.
        user: Acting<'a>,
        /// What it writes.
        writes: Writes<'a>,
    },
}

/// Whom upstream work acts for, as far as the request tells before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acting<'a> {
    /// Nobody: the Token Server heartbeat, a batch without credentials of its own.
    Nobody,
    /// This token, its key id not known yet (a batch whose sub-requests name it).
    Token(Scheme, &'a str),
    /// This identity.
    Identity(Identity<'a>),
}

/// What upstream work writes, as far as the request tells before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Writes<'a> {
    /// Nothing.
    Nothing,
    /// This collection (a record PUT or DELETE).
    Collection(&'a str),
    /// Any collection of its user (a batch).
    All,
}

/// See [`Work`].
pub(crate) fn work<'a>(app: &App, req: &'a Request<'_>, route: &'a Route<'_>) -> Work<'a> {
    if req.method == "OPTIONS" {
        return Work::Local;
    }
    if !route.allows(req.method) {
        return Work::Refused(Error::MethodNotAllowed(route.allow()));
    }
    let identified = |bucket: &'a str, writes| match auth::identify(
        req.header("authorization"),
        req.header("x-keyid"),
        req.header("x-client-state"),
        bucket,
    ) {
        Ok(who) => Work::Upstream {
            user: Acting::Identity(who),
            writes,
        },
        Err(e) => Work::Refused(e.into()),
    };
    match route {
        Route::Hello | Route::LbHeartbeat | Route::Version => Work::Local,
        Route::Heartbeat => Work::Upstream {
            user: Acting::Nobody,
            writes: Writes::Nothing,
        },
        // Its sub-requests are judged one by one when it runs (they may carry credentials
        // of their own); its lane is the one of its outer credentials, if any.
        Route::Batch => {
            let authorization = req.header("authorization");
            let outer = auth::identify(
                authorization,
                req.header("x-keyid"),
                req.header("x-client-state"),
                "syncto",
            );
            let user = match (outer, auth::credential(authorization)) {
                (Ok(who), _) => Acting::Identity(who),
                (Err(_), Ok((scheme, token))) => Acting::Token(scheme, token),
                (Err(_), Err(_)) => {
                    return Work::Upstream {
                        user: Acting::Nobody,
                        writes: Writes::Nothing,
                    };
                }
            };
            Work::Upstream {
                user,
                writes: Writes::All,
            }
        }
        Route::Bucket(bucket)
        | Route::Collections(bucket)
        | Route::Collection(bucket, _)
        | Route::Records(bucket, _) => identified(bucket, Writes::Nothing),
        Route::Record(bucket, collection, _) => {
            let enabled = match req.method {
                "PUT" => app.config.put_enabled(collection),
                "DELETE" => app.config.delete_enabled(collection),
                _ => true,
            };
            if !enabled {
                return Work::Refused(Error::WriteDisabled);
            }
            let writes = match req.method {
                "PUT" | "DELETE" => Writes::Collection(collection),
                _ => Writes::Nothing,
            };
            identified(bucket, writes)
        }
    }
}

/// The pool's lane of upstream work. Its user is the account when the credentials cache
/// knows the token (a keyed hash of its storage endpoint, the same for every token of the
/// account), else a keyed hash of the token (its first request, or a batch without a key id
/// in its outer headers: the key id is left out, so that both name one lane). A write's key
/// is a keyed hash of the token and the lower-cased collection (as the Sync node compares
/// names): the same before and after the account is known.
fn lane(app: &App, user: Acting<'_>, writes: Writes<'_>) -> Lane {
    let (token, account) = match user {
        Acting::Nobody => return Lane::ANONYMOUS,
        Acting::Token(scheme, credential) => {
            (app.lane_key.hash_one((scheme.word(), credential)), None)
        }
        Acting::Identity(who) => (
            app.lane_key.hash_one((who.scheme.word(), who.credential)),
            app.cache.account(&app.cache.key(&who)),
        ),
    };
    // Never 0, the anonymous lane's.
    let user = account.unwrap_or(token) | 1;
    let writes = match writes {
        Writes::Nothing => server::Writes::Nothing,
        Writes::Collection(c) => {
            let mut h = app.lane_key.build_hasher();
            h.write_u64(token);
            c.bytes().for_each(|b| h.write_u8(b.to_ascii_lowercase()));
            server::Writes::Collection(h.finish())
        }
        Writes::All => server::Writes::All,
    };
    Lane { user, writes }
}

fn serve(
    app: &App,
    req: &Request<'_>,
    route: &Route<'_>,
    memo: &mut Memo,
) -> Result<Response, Error> {
    match route {
        Route::Hello => hello::hello(app, req),
        Route::Heartbeat => hello::heartbeat(app),
        Route::LbHeartbeat => hello::lbheartbeat(),
        Route::Version => hello::version(),
        Route::Batch => batch::batch(app, req),
        Route::Bucket(b) => records::bucket(app, req, b, memo),
        Route::Collections(b) => records::collections(app, req, b, memo),
        Route::Collection(b, c) => records::collection(app, req, b, c, memo),
        Route::Records(b, c) => records::list(app, req, b, c, memo),
        Route::Record(b, c, id) => records::record(app, req, b, c, id, memo),
    }
}

/// A user's data asked for with `X-Client-State` gets the `soft-eol` Alert saying the
/// header is deprecated, unless the answer already has an Alert.
fn deprecated_client_state(
    app: &App,
    req: &Request<'_>,
    route: &Route<'_>,
    resp: &mut Result<Response, Error>,
) {
    if matches!(
        route,
        Route::Bucket(..)
            | Route::Collections(..)
            | Route::Collection(..)
            | Route::Records(..)
            | Route::Record(..)
    ) && req.header("x-client-state").is_some()
    {
        let alert = serde_json::json!({
            "code": "soft-eol",
            "message": "X-Client-State header is deprecated and should not be provided anymore.",
            "url": app.config.project_docs,
        })
        .to_string();
        if let Ok(r) = resp {
            alert::offer(r, alert::Alert::ClientStateDeprecated(alert));
        }
    }
}

/// An error document, logged when it says something about upstreams.
pub(crate) fn error(app: &App, e: Error) -> Response {
    // As the original: 304 and 412 are normal answers (not logged),
    // other 4xx are the client's business (info), the rest is ours or
    // the upstream's trouble (error).
    if let Error::Upstream(u) = &e {
        match u {
            sync15::Error::Status(_, r) if matches!(r.status, 304 | 412) => {}
            sync15::Error::Status(_, r) if r.status < 500 => log::info!("{u}"),
            _ => log::error!("{u}"),
        }
    }
    e.parts().into_response(app.config.retry_after_seconds)
}

/// `authn_type.<scheme>`: one count per request to an endpoint that needs a user.
fn count_authn_type(app: &App, req: &Request<'_>, route: &Route<'_>) {
    let open = matches!(
        route,
        Route::Hello | Route::Heartbeat | Route::LbHeartbeat | Route::Version | Route::Batch
    );
    if open || req.method == "OPTIONS" {
        return;
    }
    if let Some(scheme) = crate::auth::authn_type(req.header("authorization")) {
        app.metrics.incr(&format!("authn_type.{scheme}"));
    }
}

impl From<CallError> for Error {
    fn from(r: CallError) -> Error {
        match r {
            CallError::Upstream(e) => Error::Upstream(e),
            CallError::HeldBack(wait) => Error::HeldBack(wait.as_secs() + 1),
            CallError::TooManyTokenCalls => Error::param(
                "header",
                "Authorization",
                format!(
                    "One request may ask the Token Server for credentials at most {MAX_TOKEN_CALLS} times: send the requests of other users separately."
                ),
            ),
        }
    }
}

/// Longest client User-Agent passed upstream, in bytes.
const MAX_USER_AGENT: usize = 512;

/// `Syncto/<version> (on behalf of <client UA>)`. The client's part has its
/// control characters replaced (an HTTP library refuses them in a header,
/// which must not turn a request into a 503) and is cut at 512 bytes.
pub(crate) fn user_agent(req: &Request<'_>) -> String {
    match req
        .header("user-agent")
        .map(str::trim)
        .filter(|u| !u.is_empty())
    {
        Some(ua) => {
            let mut out = format!("Syncto/{VERSION} (on behalf of ");
            let start = out.len();
            for c in ua.chars() {
                if out.len() - start + c.len_utf8() > MAX_USER_AGENT {
                    break;
                }
                out.push(if c.is_control() { '?' } else { c });
            }
            out.push(')');
            out
        }
        None => format!("Syncto/{VERSION}"),
    }
}
