//! The write side: status transitions queued in the `outbox` table and delivered to the
//! platforms. The table is the whole state — a row is written before any request, its retry
//! schedule (`attempts`, `next_attempt_at`) lives in it, and so does the fact that an attempt's
//! outcome is unknown — so delivery survives restarts and crashes. A claimed entry is held under
//! a lease its drain renews while it works: another process never takes live work, and a stopped
//! process's entries come back once its lease runs out. [`drain_once`] is the worker
//! as one step function: the daemon calls it every `push_interval`, `ordersync push` once, and
//! tests call it with the clock they choose.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backoff::backoff::Backoff;
use chrono::{DateTime, TimeDelta, Utc};
use tracing::{error, info, warn};

pub use crate::model::{Action, Entry, OrderSnapshot, OutboxState, Params};
pub use crate::platforms::PushOutcome;

use crate::config::{PlatformConfig, RetryConfig};
use crate::http::HttpError;
use crate::model::{Attempt, Status, StoredItem, StoredOrder};
use crate::platforms;
use crate::store::{EnqueueError, Recorded, Store, StoreError};

/// What a drain needs of a platform: its name, its request timeout and retry policy, and the
/// two calls that send entries and read an order back. The daemon's platforms implement it;
/// tests may drain through a scripted one.
pub trait Pusher: Send + Sync {
    /// The platform's configured name, as the outbox rows carry it.
    fn name(&self) -> &str;
    /// How long one push request may take: the lease on claimed entries is derived from it.
    fn timeout(&self) -> Duration;
    fn retry(&self) -> &RetryConfig;
    /// Sends entries of this platform, one outcome per entry in order; `None` when the
    /// platform cannot be pushed to (read-only kinds).
    fn push(&self, entries: &[Entry]) -> impl Future<Output = Option<Vec<PushOutcome>>> + Send;
    /// Whether an entry whose last attempt's outcome is unknown is already applied on the
    /// platform; `None` when it cannot tell.
    fn already_applied(
        &self,
        entry: &Entry,
    ) -> impl Future<Output = Option<Result<bool, HttpError>>> + Send;
}

/// Why `transition` refused. Nothing was queued.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(
        "no order `{order}` is stored for platform `{platform}` (by id or number): run `ordersync sync {platform}` first"
    )]
    UnknownOrder { platform: String, order: String },
    #[error(
        "platform `{platform}` ({kind}) is read-only: ordersync cannot push status changes to it"
    )]
    ReadOnly {
        platform: String,
        kind: &'static str,
    },
    #[error("platform `{platform}` ({kind}) cannot be asked for `{action}` (it can do: {can})")]
    Unsupported {
        platform: String,
        kind: &'static str,
        action: Action,
        can: String,
    },
    #[error(
        "order {order} is `{from}`; the state machine does not allow `{from}` -> `{to}` (--force overrides)"
    )]
    Forbidden {
        order: String,
        from: Status,
        to: Status,
    },
    #[error("{0}")]
    Params(String),
    #[error("order {order} already has entry #{id} queued for `{action}` (state {state})")]
    Duplicate {
        order: String,
        id: i64,
        action: Action,
        state: OutboxState,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether [`enqueue`] holds a transition to the status state machine (`transition --force`
/// overrides it, for an order the platform moved on its own in a way the machine does not show).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateCheck {
    Enforce,
    Override,
}

/// Validates a transition against the stored order, the platform's abilities and the state
/// machine, then queues it. Returns the new row's id.
pub async fn enqueue(
    store: &Store,
    cfg: &PlatformConfig,
    order: &str,
    action: Action,
    params: &Params,
    check: StateCheck,
    now: DateTime<Utc>,
) -> Result<i64, Refusal> {
    let actions = cfg.push_actions();
    if actions.is_empty() {
        return Err(Refusal::ReadOnly {
            platform: cfg.name.clone(),
            kind: cfg.kind.as_str(),
        });
    }
    if !actions.contains(&action.as_str()) {
        return Err(Refusal::Unsupported {
            platform: cfg.name.clone(),
            kind: cfg.kind.as_str(),
            action,
            can: actions.join(", "),
        });
    }
    platforms::check_push_params(cfg.kind, action, params).map_err(Refusal::Params)?;
    let wanted_items = params.items.clone();
    let vet = move |stored: &StoredOrder, items: &[StoredItem]| -> Result<(), Refusal> {
        if let Action::Status(to) = action {
            let from: Status = stored.status.parse().unwrap_or(Status::Unknown);
            if check == StateCheck::Enforce && !from.can_transition_to(to) {
                return Err(Refusal::Forbidden {
                    order: stored.order_id.clone(),
                    from,
                    to,
                });
            }
        }
        let known: Vec<&str> = items.iter().map(|i| i.item_id.as_str()).collect();
        if let Some(bad) = wanted_items.iter().find(|i| !known.contains(&i.as_str())) {
            return Err(Refusal::Params(format!(
                "order {} has no item `{bad}` (items: {})",
                stored.order_id,
                known.join(", ")
            )));
        }
        Ok(())
    };
    store
        .enqueue(&cfg.name, order, action, params, now, vet)
        .await
        .map_err(|e| match e {
            EnqueueError::UnknownOrder => Refusal::UnknownOrder {
                platform: cfg.name.clone(),
                order: order.to_string(),
            },
            EnqueueError::Duplicate {
                order_id,
                id,
                state,
            } => Refusal::Duplicate {
                order: order_id,
                id,
                action,
                state,
            },
            EnqueueError::Refused(refusal) => refusal,
            EnqueueError::Store(e) => Refusal::Store(e),
        })
}

/// `outbox retry ID`: a failed or cancelled entry goes back in the queue with a fresh budget.
pub async fn retry(store: &Store, id: i64, now: DateTime<Utc>) -> Result<(), String> {
    match store.retry_push(id, now).await {
        Ok(true) => Ok(()),
        Ok(false) => {
            Err(explain_state(store, id, "only failed or cancelled entries can be retried").await)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// `outbox cancel ID`: a pending or failed entry will not be sent.
pub async fn cancel(store: &Store, id: i64, now: DateTime<Utc>) -> Result<(), String> {
    match store.cancel_push(id, now).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(explain_state(
            store,
            id,
            "only pending or failed entries can be cancelled (an in-flight one may already have reached the platform)",
        )
        .await),
        Err(e) => Err(e.to_string()),
    }
}

async fn explain_state(store: &Store, id: i64, rule: &str) -> String {
    match store.outbox_state(id).await {
        Ok(Some(state)) => format!("entry #{id} is {state}: {rule}"),
        Ok(None) => format!("no outbox entry #{id}"),
        Err(e) => e.to_string(),
    }
}

/// How long a claim holds without renewal: one push request to its timeout, as long again for
/// its wait on the rate limit and the read-back before it, and a write waiting out another
/// program's lock. A drain renews its claims every third of this while it works, so the lease
/// bounds only how long a stopped holder's entries wait, not how long a drain may take.
pub fn lease(timeout: Duration, busy_timeout: Duration) -> Duration {
    timeout * 2 + busy_timeout
}

/// One drain's claims on one platform: renewed while the drain works, and checked before it
/// sends, so an entry taken over after a stall (a suspended process, a lease run out) is not
/// sent by both holders.
struct Claims<'a> {
    store: &'a Store,
    platform: String,
    /// The drain's clock (`now` of [`drain_once`]) when it claimed, and the monotonic instant
    /// then: later lease ends are on the drain's clock, which tests choose.
    claimed_at: DateTime<Utc>,
    started: tokio::time::Instant,
    lease: Duration,
}

impl Claims<'_> {
    /// Extends the lease of every entry of the platform this process holds; returns their ids.
    async fn renew(&self) -> Result<HashSet<i64>, StoreError> {
        let elapsed = TimeDelta::from_std(self.started.elapsed()).unwrap_or(TimeDelta::MAX);
        let lease = TimeDelta::from_std(self.lease).unwrap_or(TimeDelta::MAX);
        self.store
            .renew_claims(&self.platform, self.claimed_at + elapsed + lease)
            .await
    }

    /// Renews every third of the lease, for as long as the drain runs (it is dropped with it).
    async fn keep(&self) -> std::convert::Infallible {
        loop {
            tokio::time::sleep(self.lease / 3).await;
            if let Err(e) = self.renew().await {
                warn!(platform = %self.platform, error = %e,
                      "cannot renew the lease on outbox entries being pushed; will try again");
            }
        }
    }
}

/// The delay before attempt `attempts + 1`, after `attempts` failures: jittered exponential
/// from the platform's `[retry]`, and never sooner than a `Retry-After` (itself capped at
/// `max_interval`, so a platform cannot park an entry for a day).
pub fn retry_delay(retry: &RetryConfig, attempts: u32, retry_after: Option<Duration>) -> Duration {
    let mut policy = backoff::ExponentialBackoffBuilder::new()
        .with_initial_interval(retry.initial_interval)
        .with_max_interval(retry.max_interval)
        .with_multiplier(2.0)
        .with_randomization_factor(0.5)
        .with_max_elapsed_time(None)
        .build();
    let mut delay = retry.initial_interval;
    for _ in 0..attempts.max(1) {
        delay = policy.next_backoff().unwrap_or(retry.max_interval);
    }
    match retry_after {
        Some(asked) => delay.max(asked.min(retry.max_interval)),
        None => delay,
    }
}

/// What one drain did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    pub sent: u64,
    pub done: u64,
    pub already_applied: u64,
    pub retried: u64,
    pub failed: u64,
}

impl DrainReport {
    fn add(&mut self, o: DrainReport) {
        self.sent += o.sent;
        self.done += o.done;
        self.already_applied += o.already_applied;
        self.retried += o.retried;
        self.failed += o.failed;
    }
}

/// Most entries claimed per platform per drain: bounds one drain's memory and request.
const BATCH: usize = 1000;

/// Sends every due entry of the given platforms once. Platforms drain concurrently; within one,
/// an order's entries go out in the order they were queued (an entry waits while an earlier one
/// for the same order is pending, in flight or failed).
pub async fn drain_once<P: Pusher + 'static>(
    store: &Store,
    platforms: &BTreeMap<String, Arc<P>>,
    now: DateTime<Utc>,
) -> Result<DrainReport, StoreError> {
    let mut tasks = tokio::task::JoinSet::new();
    for p in platforms.values() {
        let (store, p) = (store.clone(), p.clone());
        tasks.spawn(async move { drain_platform(&store, p.as_ref(), now).await });
    }
    // Every platform's drain runs to its end: returning early would abort the others
    // mid-push and leave their entries in flight.
    let mut total = DrainReport::default();
    let mut first_error = None;
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(r)) => total.add(r),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(StoreError::Other(format!("push task failed: {e}")));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

async fn drain_platform<P: Pusher>(
    store: &Store,
    p: &P,
    now: DateTime<Utc>,
) -> Result<DrainReport, StoreError> {
    let lease = lease(p.timeout(), store.busy_timeout());
    let entries = store.claim_due(p.name(), now, lease, BATCH).await?;
    if entries.is_empty() {
        return Ok(DrainReport::default());
    }
    let claims = Claims {
        store,
        platform: p.name().to_owned(),
        claimed_at: now,
        started: tokio::time::Instant::now(),
        lease,
    };
    tokio::select! {
        r = push_claimed(store, p, entries, &claims, now) => r,
        never = claims.keep() => match never {},
    }
}

async fn push_claimed<P: Pusher>(
    store: &Store,
    p: &P,
    entries: Vec<Entry>,
    claims: &Claims<'_>,
    now: DateTime<Utc>,
) -> Result<DrainReport, StoreError> {
    let mut report = DrainReport::default();
    let mut to_send = Vec::with_capacity(entries.len());
    for e in entries {
        if !e.outcome_unknown {
            to_send.push(e);
            continue;
        }
        match p.already_applied(&e).await {
            Some(Ok(true)) => {
                info!(platform = %e.platform, order = %e.order_id, action = %e.action,
                      "already applied on the platform; not sending again");
                report.already_applied += 1;
                finish(store, &e, PushOutcome::Done, p.retry(), now, &mut report).await?;
            }
            Some(Ok(false)) | None => to_send.push(e),
            // The read-back itself failed: whether the first attempt landed is still unknown, so
            // the entry stays marked for a read-back.
            Some(Err(err)) => {
                let err = match err {
                    HttpError::OutcomeUnknown { .. } => err,
                    other => HttpError::OutcomeUnknown {
                        reason: format!("reading the order back failed: {other}"),
                    },
                };
                finish(
                    store,
                    &e,
                    PushOutcome::Retry(err),
                    p.retry(),
                    now,
                    &mut report,
                )
                .await?
            }
        }
    }
    if to_send.is_empty() {
        return Ok(report);
    }
    // The read-backs may have taken long: send only what is still ours.
    let held = claims.renew().await?;
    to_send.retain(|e| {
        let ours = held.contains(&e.id);
        if !ours {
            warn!(platform = %e.platform, order = %e.order_id, action = %e.action, entry = e.id,
                  "not sending: this process's lease on the entry ran out and another process took it over");
        }
        ours
    });
    if to_send.is_empty() {
        return Ok(report);
    }
    #[cfg(feature = "crash-hooks")]
    crash_point("before_send");
    let outcomes = match p.push(&to_send).await {
        Some(o) => o,
        None => to_send
            .iter()
            .map(|_| PushOutcome::Failed(format!("platform {} is read-only", p.name())))
            .collect(),
    };
    report.sent += to_send.len() as u64;
    #[cfg(feature = "crash-hooks")]
    crash_point("after_send");
    for (e, o) in to_send.iter().zip(outcomes) {
        finish(store, e, o, p.retry(), now, &mut report).await?;
    }
    Ok(report)
}

async fn finish(
    store: &Store,
    e: &Entry,
    outcome: PushOutcome,
    retry: &RetryConfig,
    now: DateTime<Utc>,
    report: &mut DrainReport,
) -> Result<(), StoreError> {
    let attempts = e.attempts + 1;
    let (state, next, last_error, unknown) = match &outcome {
        PushOutcome::Done => {
            info!(platform = %e.platform, order = %e.order_id, action = %e.action, "pushed");
            report.done += 1;
            (OutboxState::Done, now, None, false)
        }
        PushOutcome::Failed(msg) => {
            error!(platform = %e.platform, order = %e.order_id, action = %e.action, error = %msg,
                   "push failed permanently; later transitions of this order wait for it: fix the cause, then `ordersync outbox retry {}` (or `outbox cancel {}`)", e.id, e.id);
            report.failed += 1;
            (OutboxState::Failed, now, Some(msg.clone()), false)
        }
        PushOutcome::Retry(err) if attempts >= retry.max_attempts => {
            error!(platform = %e.platform, order = %e.order_id, action = %e.action, error = %err,
                   attempts, "push failed after max_attempts; later transitions of this order wait for it: `ordersync outbox retry {}` to try again (or `outbox cancel {}`)", e.id, e.id);
            report.failed += 1;
            (OutboxState::Failed, now, Some(err.to_string()), false)
        }
        PushOutcome::Retry(err) => {
            let delay = retry_delay(retry, attempts, err.retry_after());
            warn!(platform = %e.platform, order = %e.order_id, action = %e.action, error = %err,
                  attempts, retry_in = ?delay, "push failed, will retry");
            report.retried += 1;
            let next = now + TimeDelta::from_std(delay).unwrap_or(TimeDelta::MAX);
            (
                OutboxState::Pending,
                next,
                Some(err.to_string()),
                matches!(err, HttpError::OutcomeUnknown { .. }),
            )
        }
    };
    crate::telemetry::metrics::metrics().push(&e.platform, state.as_str());
    let attempt = Attempt {
        state,
        attempts,
        next_attempt_at: next,
        last_error,
        outcome_unknown: unknown,
        at: now,
    };
    match store.finish_push(e.id, attempt).await? {
        Recorded::Yes => {}
        // A sync saw the target status and completed it meanwhile.
        Recorded::NotHeld(Some(OutboxState::Done)) => {}
        Recorded::NotHeld(now_state) => {
            warn!(platform = %e.platform, order = %e.order_id, action = %e.action, entry = e.id,
                  outcome = %state, now = now_state.map_or("deleted", OutboxState::as_str),
                  "outcome not recorded: this process's lease on the entry ran out and it was taken over (the new holder reads the order back before any resend)");
        }
    }
    Ok(())
}

/// Test hook, only in builds with the `crash-hooks` feature (the test suite's, never the shipped
/// binary): `FAILPOINT_ORDERSYNC_PUSH=before_send|after_send` kills the process (SIGKILL) at
/// that point of a push, so the crash-recovery tests can stop it exactly where a power cut
/// might. (Not `ORDERSYNC_…`: every such variable is a configuration key.)
#[cfg(feature = "crash-hooks")]
fn crash_point(point: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| std::env::var("FAILPOINT_ORDERSYNC_PUSH").ok());
    if at.as_deref() == Some(point) {
        warn!(point, "FAILPOINT_ORDERSYNC_PUSH: killing the process");
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_within_the_jitter_bounds_and_respect_retry_after() {
        let retry = RetryConfig {
            max_attempts: 10,
            initial_interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(60),
        };
        for _ in 0..200 {
            let d1 = retry_delay(&retry, 1, None);
            assert!(
                d1 >= Duration::from_secs(1) && d1 <= Duration::from_secs(3),
                "{d1:?}"
            );
            let d2 = retry_delay(&retry, 2, None);
            assert!(
                d2 >= Duration::from_secs(2) && d2 <= Duration::from_secs(6),
                "{d2:?}"
            );
            let d9 = retry_delay(&retry, 9, None);
            assert!(
                d9 <= Duration::from_secs(90),
                "capped near max_interval: {d9:?}"
            );
            let asked = retry_delay(&retry, 1, Some(Duration::from_secs(30)));
            assert!(asked >= Duration::from_secs(30), "{asked:?}");
            let capped = retry_delay(&retry, 1, Some(Duration::from_secs(3600)));
            assert!(capped <= Duration::from_secs(60), "{capped:?}");
        }
    }

    #[test]
    fn actions_parse_from_statuses_and_invoice() {
        assert_eq!(
            "shipped".parse::<Action>(),
            Ok(Action::Status(Status::Shipped))
        );
        assert_eq!("Invoice".parse::<Action>(), Ok(Action::Invoice));
        assert!("sent".parse::<Action>().is_err());
    }
}
