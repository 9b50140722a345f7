//! The daemon's sinks: one delivery task per `[sinks.<name>]`, started with the daemon,
//! replaced on a reload only where the sink's table changed (an unchanged sink keeps
//! delivering, so a reload adds no duplicates), and stopped at shutdown. A stopped task moves
//! its cursor over the acknowledged start of its batch in flight; the rest of the batch is
//! delivered again by its successor. On a database several daemons share, each sink delivers
//! from the one daemon holding its lease.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::SinkConfig;
use crate::store::{Lease, Store};

use super::lease::{Held, LeaseTimes};
use crate::telemetry::metrics::metrics;

struct Running {
    cfg: SinkConfig,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

pub struct Sinks {
    running: BTreeMap<String, Running>,
    /// `daemon.lease_period`, for the sinks' leases on a shared database.
    lease: LeaseTimes,
}

impl Sinks {
    pub fn new(lease_period: Duration) -> Sinks {
        Sinks {
            running: BTreeMap::new(),
            lease: LeaseTimes::new(lease_period),
        }
    }

    /// Runs `configs`: starts the new and changed ones, stops the changed and removed ones.
    pub async fn apply(
        &mut self,
        configs: &[SinkConfig],
        store: &Store,
        parent: &CancellationToken,
    ) {
        metrics().watch_sinks(configs.iter().map(|c| (c.name.as_str(), c.max_lag)));
        let keep: Vec<&str> = configs
            .iter()
            .filter(|c| self.running.get(&c.name).is_some_and(|r| r.cfg == **c))
            .map(|c| c.name.as_str())
            .collect();
        let stopping: Vec<String> = self
            .running
            .keys()
            .filter(|k| !keep.contains(&k.as_str()))
            .cloned()
            .collect();
        for name in stopping {
            if let Some(r) = self.running.remove(&name) {
                r.cancel.cancel();
                let _ = r.task.await;
                if !configs.iter().any(|c| c.name == name) {
                    info!(sink = %name, "sink removed from the configuration; its row and cursor stay in the database");
                }
            }
        }
        for cfg in configs {
            if self.running.contains_key(&cfg.name) {
                continue;
            }
            let cancel = parent.child_token();
            let task = if store.shares_work() {
                tokio::spawn(deliver_under_lease(
                    cfg.clone(),
                    store.clone(),
                    cancel.clone(),
                    self.lease,
                ))
            } else {
                tokio::spawn(crate::sinks::run(
                    cfg.clone(),
                    store.clone(),
                    cancel.clone(),
                ))
            };
            self.running.insert(
                cfg.name.clone(),
                Running {
                    cfg: cfg.clone(),
                    cancel,
                    task,
                },
            );
        }
    }

    /// Stops every sink and waits for them (each stops at once: it records what was
    /// acknowledged, and what was not stays behind its cursor).
    pub async fn stop(&mut self) {
        for r in self.running.values() {
            r.cancel.cancel();
        }
        for (_, r) in std::mem::take(&mut self.running) {
            let _ = r.task.await;
        }
    }
}

/// On a database several daemons share, a sink delivers from one of them at a time: the one
/// holding its lease. The others wait, trying every eighth of a lease period, and the first to find
/// it free (released at a shutdown, or expired after a crash) takes over from the cursor in the
/// database, so a batch cut short is delivered again, never skipped.
async fn deliver_under_lease(
    cfg: SinkConfig,
    store: Store,
    cancel: CancellationToken,
    lease: LeaseTimes,
) {
    let name = Lease::sink(&cfg.name);
    while !cancel.is_cancelled() {
        if let Some(held) = Held::take(&store, &name, lease, &cancel).await {
            info!(sink = %cfg.name, "delivering from this daemon (it holds the sink's lease)");
            crate::sinks::run(cfg.clone(), held.store().clone(), held.cancel.clone()).await;
            held.release().await;
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(lease.look_every()) => {}
            _ = cancel.cancelled() => return,
        }
    }
}
