//! Drift between the store and the platforms (`ordersync verify`). A verify run reads every order
//! a platform lists from `backfill_from` on, through the kind's own [`Source`] (the requests,
//! rate limit and retries a sync uses, in an exhaustive pass that trusts nothing stored), and
//! compares each order with the stored row by content hash and canonical status. It writes
//! nothing unless asked to repair.
//!
//! Memory stays flat however large the shop: each page is compared with the store as it comes,
//! and all that is kept of the listing is a 64-bit hash of each order id, for the one pass over
//! the stored ids that finds the orders the platform no longer lists.
//!
//! A repair writes the missing and changed orders with [`Store::apply_page`], in the same
//! transaction a sync page commits, so the change feed records them as a sync would (`created`,
//! `status_changed`, `updated`). It never moves the sync cursor or the pass checkpoint, and
//! never deletes an order: an order the platform stopped listing is reported, nothing more.

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::Utc;

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::PlatformConfig;
use crate::http::HttpError;
use crate::platforms::{Connector, Page, PassCtx, Source, Window};
use crate::store::lock::PlatformLock;
use crate::store::{Incoming, PageWrite, Store, StoreError};
use crate::sync::Progress;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Write the missing and changed orders (`verify --repair`).
    pub repair: bool,
}

/// What one platform's verify found; `verify --json` prints these fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub name: String,
    pub kind: String,
    /// Distinct orders the platform listed.
    pub listed: u64,
    /// Orders the store holds for the platform at the end of the run (repairs included).
    pub stored: u64,
    /// How many orders the listing holds by the platform's own count, where its API gives one.
    pub platform_count: Option<u64>,
    /// Listed by the platform, absent from the store.
    pub missing: Vec<String>,
    /// Listed and stored, but stored with other content or another canonical status.
    pub changed: Vec<String>,
    /// Stored, but no longer listed by the platform. Never deleted.
    pub extra: Vec<String>,
    /// Orders written by the repair.
    pub repaired: u64,
}

impl VerifyReport {
    /// Missing and changed orders the run did not write.
    pub fn unrepaired(&self) -> u64 {
        ((self.missing.len() + self.changed.len()) as u64).saturating_sub(self.repaired)
    }

    /// Whether the store holds every listed order as the platform has it (extra orders aside).
    pub fn in_sync(&self) -> bool {
        self.unrepaired() == 0
    }
}

/// Why a platform could not be verified.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{source}{hint}")]
    Http {
        hint: String,
        #[source]
        source: HttpError,
    },
    #[error(
        "the platform sent a page link already read in this run ({token}); stopping instead of \
         looping"
    )]
    PageLoop { token: String },
    #[error(
        "page {page} held only orders already read in this run ({orders} of them), with a link \
         to yet another page: the platform is not moving through its listing (does it ignore \
         its paging parameter?), so the run stops here"
    )]
    NoProgress { page: u64, orders: usize },
    #[error("{0}")]
    Store(#[source] StoreError),
    #[error("interrupted before the whole listing was read; nothing is reported as drift")]
    Interrupted,
}

/// A platform that could not be verified, with what a repair had written before it stopped
/// (those writes stand, with their events).
#[derive(Debug)]
pub struct VerifyError {
    pub platform: String,
    pub repaired: u64,
    pub failure: Failure,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "platform {}: {}", self.platform, self.failure)?;
        if self.repaired > 0 {
            write!(
                f,
                " ({} orders were repaired before it stopped)",
                self.repaired
            )?;
        }
        Ok(())
    }
}

/// The message already carries the failure's causes, so there is no `source` to print twice.
impl std::error::Error for VerifyError {}

/// Verifies one platform while holding its lock file, so a verify never overlaps a sync of the
/// same platform in this process or another (`sync` and the daemon take the same lock).
pub async fn verify_locked(
    cfg: &PlatformConfig,
    connector: &Connector,
    store: &Store,
    opts: VerifyOptions,
    cancel: &CancellationToken,
    progress: Option<&dyn Progress>,
) -> Result<VerifyReport, VerifyError> {
    let _lock = tokio::select! {
        // The very lock file `sync` and the daemon take, so a verify never overlaps their runs.
        lock = PlatformLock::take_or_wait_for(store, &cfg.name, "a sync of this platform is running") => lock,
        _ = cancel.cancelled() => {
            return Err(VerifyError {
                platform: cfg.name.clone(),
                repaired: 0,
                failure: Failure::Interrupted,
            });
        }
    };
    verify_platform(cfg, connector, store, opts, cancel, progress).await
}

/// Compares everything `src` lists from `cfg.backfill_from` on with the store, and repairs when
/// `opts.repair` says so. The caller holds the platform's lock ([`verify_locked`] takes it).
/// Records the drift that remains in the `ordersync_drift_orders` gauges.
pub async fn verify_platform<S: Source>(
    cfg: &PlatformConfig,
    src: &S,
    store: &Store,
    opts: VerifyOptions,
    cancel: &CancellationToken,
    progress: Option<&dyn Progress>,
) -> Result<VerifyReport, VerifyError> {
    let mut run = Run {
        cfg,
        store,
        opts,
        report: VerifyReport {
            name: cfg.name.clone(),
            kind: cfg.kind.as_str().to_string(),
            ..VerifyReport::default()
        },
        seen: HashSet::new(),
        unreadable: 0,
    };
    let result = match run.walk(src, cancel, progress).await {
        Ok(()) => run.find_extra().await,
        Err(e) => Err(e),
    };
    let Run {
        mut report,
        unreadable,
        ..
    } = run;
    if let Err(failure) = result {
        let e = VerifyError {
            platform: cfg.name.clone(),
            repaired: report.repaired,
            failure,
        };
        tracing::error!(platform = %cfg.name, error = %e, "verify failed");
        return Err(e);
    }
    if unreadable > 0 {
        warn!(platform = %cfg.name, records = unreadable,
              "records the platform listed could not be read (see `rejects`); their orders, if stored, show as extra");
    }
    report.missing.sort_unstable();
    report.changed.sort_unstable();
    report.extra.sort_unstable();
    let (missing, changed) = if opts.repair {
        (0, 0)
    } else {
        (report.missing.len() as u64, report.changed.len() as u64)
    };
    crate::telemetry::metrics::metrics().record_verify(
        &cfg.name,
        missing,
        changed,
        report.extra.len() as u64,
    );
    let line = if report.in_sync() {
        "verify finished: the store holds every listed order as the platform has it"
    } else {
        "verify finished: the store has drifted from the platform (run `ordersync verify --repair`)"
    };
    info!(platform = %cfg.name, listed = report.listed, stored = report.stored,
          platform_count = ?report.platform_count, missing = report.missing.len(),
          changed = report.changed.len(), extra = report.extra.len(),
          repaired = report.repaired, "{line}");
    Ok(report)
}

struct Run<'a> {
    cfg: &'a PlatformConfig,
    store: &'a Store,
    opts: VerifyOptions,
    report: VerifyReport,
    /// 64-bit hashes of the ids listed so far: 8 bytes an order, whatever the shop's size. Two
    /// ids sharing a hash (odds of about 1 in 10^9 at 200,000 orders) could hide one order's
    /// drift, never report drift that is not there.
    seen: HashSet<u64>,
    unreadable: u64,
}

/// What one page showed.
#[derive(Default)]
struct PageDrift {
    missing: Vec<String>,
    changed: Vec<String>,
    repaired: u64,
}

fn http_failure(cfg: &PlatformConfig, source: HttpError) -> Failure {
    let hint = match &source {
        HttpError::Unauthorized { .. } => format!(
            " (the keys under [platforms.{}.auth] in {})",
            cfg.name,
            cfg.file.display()
        ),
        _ => String::new(),
    };
    Failure::Http { hint, source }
}

fn id_hash(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}

impl Run<'_> {
    /// Reads the listing page by page; each page is compared (and repaired) while the next one
    /// is fetched, as a sync overlaps its commits with its requests.
    async fn walk<S: Source>(
        &mut self,
        src: &S,
        cancel: &CancellationToken,
        progress: Option<&dyn Progress>,
    ) -> Result<(), Failure> {
        let window = Window {
            from: self.cfg.backfill_from,
            to: Utc::now(),
        };
        let ctx = PassCtx {
            platform: &self.cfg.name,
            window,
            store: self.store,
            exhaustive: true,
        };
        let (cfg, store, opts) = (self.cfg, self.store, self.opts);
        let token = src.first_token(&window);
        let mut tokens = HashSet::from([token.clone()]);
        let fetch_failure = |e| match e {
            HttpError::Cancelled => Failure::Interrupted,
            e => http_failure(cfg, e),
        };
        let mut page = src.fetch_page(&ctx, &token).await.map_err(fetch_failure)?;
        let mut number = 0;
        loop {
            number += 1;
            let next = page.next.take();
            let on_page = page.orders.len();
            let fresh = self.admit(page);
            if next.is_some() && on_page > 0 && fresh.is_empty() {
                return Err(Failure::NoProgress {
                    page: number,
                    orders: on_page,
                });
            }
            if let Some(p) = progress {
                p.page(&cfg.name, self.report.listed, self.report.platform_count);
            }
            let check = compare(store, &cfg.name, opts, fresh);
            let next = match next {
                None => {
                    self.add(check.await.map_err(Failure::Store)?);
                    return Ok(());
                }
                Some(n) if !tokens.insert(n.clone()) => {
                    self.add(check.await.map_err(Failure::Store)?);
                    return Err(Failure::PageLoop { token: n });
                }
                Some(n) => n,
            };
            if cancel.is_cancelled() {
                self.add(check.await.map_err(Failure::Store)?);
                return Err(Failure::Interrupted);
            }
            let (checked, fetched) = tokio::join!(check, src.fetch_page(&ctx, &next));
            self.add(checked.map_err(Failure::Store)?);
            page = fetched.map_err(fetch_failure)?;
        }
    }

    /// Takes the page's orders not listed before in this run, and notes the page's count.
    fn admit(&mut self, page: Page) -> Vec<Incoming> {
        if let Some(total) = page.total {
            self.report.platform_count = Some(total);
        }
        self.unreadable += page.rejects.len() as u64;
        let fresh: Vec<Incoming> = page
            .orders
            .into_iter()
            .filter(|o| self.seen.insert(id_hash(&o.order.order_id)))
            .collect();
        self.report.listed += fresh.len() as u64;
        fresh
    }

    fn add(&mut self, drift: PageDrift) {
        self.report.missing.extend(drift.missing);
        self.report.changed.extend(drift.changed);
        self.report.repaired += drift.repaired;
    }

    /// One pass over the stored ids: counts them and keeps those the listing did not show.
    async fn find_extra(&mut self) -> Result<(), Failure> {
        let seen = std::mem::take(&mut self.seen);
        let (stored, extra) = self
            .store
            .order_ids_where(&self.cfg.name, move |id| !seen.contains(&id_hash(id)))
            .await
            .map_err(Failure::Store)?;
        self.report.stored = stored;
        self.report.extra = extra;
        Ok(())
    }
}

/// Compares one page's orders with the store and, when repairing, writes the ones that differ
/// in one transaction, as a sync page commits.
async fn compare(
    store: &Store,
    platform: &str,
    opts: VerifyOptions,
    orders: Vec<Incoming>,
) -> Result<PageDrift, StoreError> {
    if orders.is_empty() {
        return Ok(PageDrift::default());
    }
    let ids = orders.iter().map(|o| o.order.order_id.clone()).collect();
    let stored: HashMap<String, (String, String)> = store
        .order_digests(platform, ids)
        .await?
        .into_iter()
        .map(|d| (d.order_id, (d.content_hash, d.status)))
        .collect();
    let mut drift = PageDrift::default();
    let mut drifted = Vec::new();
    for o in orders {
        // The status is compared as well as the bytes, as a sync page does: a reloaded
        // `status_map` changes an order's canonical status without the platform changing it.
        match stored.get(&o.order.order_id) {
            None => drift.missing.push(o.order.order_id.clone()),
            Some((hash, status)) if *hash != o.hash || status != o.order.status.as_str() => {
                drift.changed.push(o.order.order_id.clone())
            }
            Some(_) => continue,
        }
        drifted.push(o);
    }
    if opts.repair && !drifted.is_empty() {
        let write = PageWrite {
            platform: platform.to_string(),
            orders: drifted,
            rejects: Vec::new(),
            checkpoint: None,
        };
        let written = write.orders.len() as u64;
        store.apply_page(write).await?;
        drift.repaired = written;
    }
    Ok(drift)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Order, Status};
    use crate::platforms::Reconcile;

    /// A listing scripted page by page: tokens are page numbers, and each page names its next.
    struct Scripted {
        pages: Vec<(Vec<Incoming>, Option<String>, Option<u64>)>,
    }

    impl Source for Scripted {
        fn first_token(&self, _window: &Window) -> String {
            "0".into()
        }

        async fn fetch_page(&self, _ctx: &PassCtx<'_>, token: &str) -> Result<Page, HttpError> {
            let (orders, next, total) = &self.pages[token.parse::<usize>().unwrap()];
            Ok(Page {
                orders: orders.clone(),
                rejects: Vec::new(),
                next: next.clone(),
                total: *total,
            })
        }

        fn reconcile(&self) -> Reconcile {
            Reconcile::NotNeeded
        }

        async fn fetch_ids(&self, _ids: &[String]) -> Result<Page, HttpError> {
            unreachable!("verify never reads by id")
        }
    }

    fn order(id: &str, status: Status, raw: &str) -> Incoming {
        Incoming::new(
            Order {
                order_id: id.into(),
                number: id.into(),
                status,
                platform_status: status.as_str().into(),
                placed_at: None,
                updated_at: None,
                currency: None,
                total: None,
                customer_name: None,
                tracking_number: None,
                items: Vec::new(),
            },
            raw.into(),
        )
    }

    async fn stored(orders: Vec<Incoming>) -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("o.db")).unwrap();
        store
            .apply_page(PageWrite {
                platform: "shop".into(),
                orders,
                rejects: Vec::new(),
                checkpoint: None,
            })
            .await
            .unwrap();
        (store, dir)
    }

    fn cfg() -> PlatformConfig {
        PlatformConfig::new(
            "shop",
            crate::platforms::merchantpro::DESCRIPTOR.kind,
            reqwest::Url::parse("http://127.0.0.1:9/").unwrap(),
        )
    }

    async fn verify(src: &Scripted, store: &Store) -> Result<VerifyReport, VerifyError> {
        verify_platform(
            &cfg(),
            src,
            store,
            VerifyOptions::default(),
            &CancellationToken::new(),
            None,
        )
        .await
    }

    #[tokio::test]
    async fn an_order_listed_on_two_pages_is_counted_and_compared_once() {
        let (store, _dir) = stored(vec![order("1", Status::Pending, "{\"v\":1}")]).await;
        let src = Scripted {
            pages: vec![
                (
                    vec![
                        order("1", Status::Pending, "{\"v\":1}"),
                        order("2", Status::Pending, "{}"),
                    ],
                    Some("1".into()),
                    Some(3),
                ),
                (
                    vec![
                        order("2", Status::Pending, "{}"),
                        order("3", Status::Pending, "{}"),
                    ],
                    None,
                    Some(3),
                ),
            ],
        };
        let r = verify(&src, &store).await.unwrap();
        assert_eq!(r.listed, 3);
        assert_eq!(r.missing, ["2", "3"]);
        assert!(r.changed.is_empty() && r.extra.is_empty());
        assert_eq!((r.stored, r.platform_count), (1, Some(3)));
    }

    #[tokio::test]
    async fn the_same_bytes_under_another_canonical_status_are_a_change() {
        // A reloaded `status_map` maps the same record to another status: a sync would write
        // it, so the store does not hold the order as the platform has it.
        let (store, _dir) = stored(vec![order("1", Status::Pending, "{\"s\":\"x\"}")]).await;
        let src = Scripted {
            pages: vec![(
                vec![order("1", Status::Accepted, "{\"s\":\"x\"}")],
                None,
                None,
            )],
        };
        let r = verify(&src, &store).await.unwrap();
        assert_eq!(r.changed, ["1"]);
        assert!(!r.in_sync());
    }

    #[tokio::test]
    async fn a_listing_that_links_back_to_a_page_already_read_fails_instead_of_looping() {
        let (store, _dir) = stored(Vec::new()).await;
        let src = Scripted {
            pages: vec![
                (
                    vec![order("1", Status::Pending, "{}")],
                    Some("1".into()),
                    None,
                ),
                (
                    vec![order("2", Status::Pending, "{}")],
                    Some("0".into()),
                    None,
                ),
            ],
        };
        let e = verify(&src, &store).await.unwrap_err();
        assert!(matches!(e.failure, Failure::PageLoop { .. }), "{e}");
        assert!(e.to_string().starts_with("platform shop: "), "{e}");
    }

    #[tokio::test]
    async fn the_drift_left_shows_in_the_gauges() {
        let (store, _dir) = stored(vec![order("gone", Status::Pending, "{}")]).await;
        let src = Scripted {
            pages: vec![(vec![order("new", Status::Pending, "{}")], None, None)],
        };
        let name = "gauge-shop";
        let mut c = cfg();
        c.name = name.into();
        // The gauges are process-wide: a name of its own keeps other tests' runs out of them.
        let r = verify_platform(
            &c,
            &src,
            &store,
            VerifyOptions::default(),
            &CancellationToken::new(),
            None,
        )
        .await
        .unwrap();
        assert_eq!((r.missing.len(), r.extra.len()), (1, 0));
        let text = crate::telemetry::metrics::metrics().encode();
        assert!(
            text.contains(r#"ordersync_drift_orders{platform="gauge-shop",drift="missing"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ordersync_drift_orders{platform="gauge-shop",drift="extra"} 0"#),
            "{text}"
        );
    }
}
