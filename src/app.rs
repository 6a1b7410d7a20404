//! The shared state of the server, built once from the configuration: the credentials
//! cache, the Token Server and storage clients, statsd; and how a user's storage call gets
//! its credentials (memo, cache, Token Server) and is retried once after a 401.

use crate::auth::Identity;
use crate::config::Config;
use crate::credentials::{self, Cache, Key};
use crate::metrics::{self, Metrics};
use crate::startup::StartupError;
use crate::sync15::storage::Storage;
use crate::sync15::tokenserver::TokenServer;
use crate::sync15::{self, Credentials};
use crate::token_budget::TokenBudget;
use crate::upstream;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Per-request (or per-batch) memory of credentials already looked up, so a
/// batch looks each user up once.
#[derive(Default)]
pub(crate) struct Memo {
    entries: Vec<([u8; 32], Arc<Credentials>)>,
    /// Token Server exchanges made so far.
    token_calls: usize,
    /// A batch's deadline: no upstream call of its sub-requests starts past it.
    pub(crate) deadline: Option<Instant>,
    /// The client's address (the peer's, or what trusted proxies say), which Token Server
    /// refusals are charged to.
    client: Option<IpAddr>,
}

impl Memo {
    /// The memo of a request from `client`.
    pub(crate) fn for_client(client: Option<IpAddr>) -> Memo {
        Memo {
            client,
            ..Memo::default()
        }
    }
}

/// Most Token Server exchanges one request (a whole batch included) may
/// cause: one user's lookup, a fresh token after the Sync node refused the
/// cached one, and one more. Without it one unauthenticated batch of 25
/// sub-requests with 25 made-up tokens makes 25 Token Server calls.
pub(crate) const MAX_TOKEN_CALLS: usize = 3;

/// Shared state of the server: configuration, cache, upstream clients.
pub struct App {
    /// Validated configuration.
    pub config: Config,
    /// Credentials cache.
    pub cache: Cache,
    /// Token Server client.
    pub(crate) tokens: TokenServer,
    /// Storage-node client.
    pub storage: Storage,
    /// statsd.
    pub(crate) metrics: Metrics,
    /// Token Server refusals charged to each client address.
    budget: TokenBudget,
    /// The key of the hashes that name a request's lane in the worker pool (so that no
    /// client can choose another's).
    pub(crate) lane_key: std::hash::RandomState,
    /// See [`App::hook_collapsed_writes`].
    pub(crate) collapse_hook: std::sync::Mutex<Option<CollapseHook>>,
}

/// See [`App::hook_collapsed_writes`].
pub(crate) type CollapseHook = Arc<dyn Fn(&str) + Send + Sync>;

impl App {
    /// Builds every part from a validated configuration: statsd, the TLS set-up and the
    /// shared agent, the cache (with a random secret unless one is configured) and both
    /// upstream clients.
    pub(crate) fn new(config: Config) -> Result<App, StartupError> {
        let metrics = match &config.statsd_url {
            Some(addr) => metrics::Metrics::udp(addr, &config.statsd_prefix)
                .map_err(|e| StartupError::new(format!("statsd_url: {addr}: {e}")))?,
            None => metrics::Metrics::disabled(),
        };
        let tls = upstream::tls::client_config(
            config.certificate_ca_bundle.as_deref(),
            &config.certificate_pins,
        )
        .map_err(StartupError::new)?;
        let agent = upstream::agent::agent(
            tls,
            config.upstream_connect_timeout,
            config.upstream_timeout,
            config.workers.max(4),
        );
        let secret = match &config.cache_hmac_secret {
            Some(s) => s.expose().to_vec(),
            None => {
                let mut s = vec![0u8; 32];
                getrandom::getrandom(&mut s).map_err(|e| {
                    StartupError::new(format!("no randomness for the cache secret: {e}"))
                })?;
                s
            }
        };
        let cache = credentials::Cache::new(
            secret,
            config.cache_credentials_ttl,
            config.cache_max_entries,
        );
        let tokens = sync15::tokenserver::TokenServer::new(
            agent.clone(),
            &config.token_server_url,
            config.token_server_heartbeat_timeout,
            config.allow_insecure_upstream,
            metrics.clone(),
        );
        let storage = sync15::storage::Storage::new(
            agent,
            metrics.clone(),
            config.write_conflict_budget,
            config.log_user_ids_hashed,
        );
        let budget = TokenBudget::new(config.token_refusals_per_minute);
        Ok(App {
            config,
            cache,
            tokens,
            storage,
            metrics,
            lane_key: std::hash::RandomState::new(),
            collapse_hook: std::sync::Mutex::new(None),
            budget,
        })
    }

    /// For tests only: `hook(collection)` runs in each collapsed write of a batch after
    /// the records were read and before the first write made from that read, so that a
    /// test can write in between as another device would (the race the collapsed path
    /// must answer exactly as the one-by-one path). Nothing else calls it.
    #[doc(hidden)]
    pub fn hook_collapsed_writes(&self, hook: impl Fn(&str) + Send + Sync + 'static) {
        let mut slot = crate::concurrency::lock(&self.collapse_hook);
        *slot = Some(Arc::new(hook));
    }

    /// Credentials for `who` (lookup key `key`): memo, then cache, then
    /// Token Server. `ua` is the User-Agent sent on behalf of the client.
    fn credentials(
        &self,
        who: &Identity<'_>,
        key: Key,
        ua: &str,
        memo: &mut Memo,
    ) -> Result<Arc<Credentials>, CallError> {
        if let Some((_, c)) = memo.entries.iter().find(|(k, _)| *k == key) {
            return Ok(Arc::clone(c));
        }
        if memo.token_calls >= MAX_TOKEN_CALLS && !self.cache.knows(&key) {
            return Err(CallError::TooManyTokenCalls);
        }
        let token_calls = &mut memo.token_calls;
        let client = memo.client;
        let started = Instant::now();
        let mut exchange = Duration::ZERO;
        let mut held_back = None;
        let creds = self.cache.get_keyed(key, who, |duration| {
            // Only here, on a real miss: a cached user never asks the budget.
            let user = self.cache.user_id(who.scheme, who.key);
            if let Err(wait) = self.budget.admit(client, user, Instant::now()) {
                held_back = Some(wait);
                // What the requests waiting on this exchange get (not remembered).
                return Err(sync15::Error::Busy(
                    sync15::Upstream::TokenServer,
                    "too many refused credentials from this address".into(),
                ));
            }
            *token_calls += 1;
            let authorization = format!("{} {}", who.scheme.word(), who.credential);
            let key_header = (who.scheme.key_header(), who.key);
            let exchange_started = Instant::now();
            let token = self.tokens.fetch(&authorization, key_header, duration, ua);
            exchange = exchange_started.elapsed();
            let refused = match &token {
                Ok(_) => Some(false),
                Err(sync15::Error::Status(_, r)) => {
                    ((400..500).contains(&r.status) && r.status != 429).then_some(true)
                }
                Err(_) => None,
            };
            if let Some(refused) = refused {
                self.budget.record(client, user, refused, Instant::now());
            }
            token
        });
        let creds = match (creds, held_back) {
            (Err(_), Some(wait)) => return Err(CallError::HeldBack(wait)),
            (creds, _) => creds?,
        };
        if self.metrics.is_enabled() {
            // The original's `syncclient.start_time`: making the user's Sync client ready
            // from known credentials. A Token Server exchange has its own timer.
            let ready = started.elapsed().saturating_sub(exchange);
            self.metrics.timing_fine("syncclient.start_time", ready);
            self.metrics.set("users", &self.cache.user_tag(who));
        }
        memo.entries.push((key, Arc::clone(&creds)));
        Ok(creds)
    }

    /// Run a storage call with `who`'s credentials; a 401 from the node
    /// drops the cached token and retries once with a fresh one.
    pub(crate) fn with_storage<T>(
        &self,
        who: &Identity<'_>,
        ua: &str,
        memo: &mut Memo,
        mut call: impl FnMut(&Storage, &Credentials) -> Result<T, sync15::Error>,
    ) -> Result<T, CallError> {
        let key = self.cache.key(who);
        let creds = self.credentials(who, key, ua, memo)?;
        match call(&self.storage, &creds) {
            Err(sync15::Error::Status(sync15::Upstream::Storage, r)) if r.status == 401 => {
                log::info!("sync node refused a cached token; fetching a fresh one");
                self.cache.invalidate(&key);
                memo.entries.retain(|(k, _)| *k != key);
                let creds = self.credentials(who, key, ua, memo)?;
                call(&self.storage, &creds).map_err(CallError::from)
            }
            other => other.map_err(CallError::from),
        }
    }
}

/// Why [`App::with_storage`] could not make its call.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The Token Server or the storage node failed or refused.
    Upstream(sync15::Error),
    /// This request has already made [`MAX_TOKEN_CALLS`] Token Server exchanges.
    TooManyTokenCalls,
    /// The client's address has caused its share of Token Server refusals: no exchange is
    /// made for another credential until this has passed (`token_refusals_per_minute`).
    HeldBack(Duration),
}

impl From<sync15::Error> for CallError {
    fn from(e: sync15::Error) -> CallError {
        CallError::Upstream(e)
    }
}
