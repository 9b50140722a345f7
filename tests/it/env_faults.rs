//! The running daemon against a broken environment: its database made immutable, its disk full,
//! its database locked by another program for longer than `daemon.busy_timeout`. In each case the
//! process stays up and keeps attempting its scheduled runs, the log names the database and the
//! fix, `/health` answers 503 saying why, and once the fault clears the next runs bring the store
//! to the simulator's truth without losing or duplicating an order or an event.
//!
//! The immutable file and the small tmpfs need root (CAP_LINUX_IMMUTABLE, CAP_SYS_ADMIN); where
//! the test may not, it says so and skips. The lock needs nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::running::*;
use crate::common::*;
use rusqlite::{Connection, OpenFlags};

/// Long enough that a running daemon is safe from systemd, short enough to see several pings.
const WATCHDOG: Duration = Duration::from_secs(3);

struct Scenario {
    shop: Shop,
    _setup: Setup,
    db: PathBuf,
    run: Running,
}

impl Scenario {
    /// A shop of 60 orders synced every second (reconcile every 2 s, so status changes of stored
    /// orders arrive too) by a daemon whose database is at `db` (default: the setup's folder).
    async fn start(name: &str, db: Option<PathBuf>, busy_timeout: &str) -> Scenario {
        let shop = Shop::open(name, 60).await;
        let setup = Setup::new();
        let db = db.unwrap_or_else(|| setup.db_path());
        let port = free_port();
        write_main_file(
            &setup,
            &db,
            port,
            &format!("busy_timeout = \"{busy_timeout}\""),
        );
        setup.add_platform_file(
            "shop.toml",
            &shop.platform_toml(
                "schedule = \"* * * * * *\"\nreconcile_schedule = \"*/2 * * * * *\"",
            ),
        );
        let run = Running::start(&setup, port, WATCHDOG);
        let sc = Scenario {
            shop,
            _setup: setup,
            db,
            run,
        };
        eventually(20, "the first sync", || sc.stored() == 60).await;
        sc
    }

    fn read(&self) -> Connection {
        Connection::open_with_flags(&self.db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
    }

    fn stored(&self) -> i64 {
        if !self.db.exists() {
            return 0;
        }
        let Ok(conn) = Connection::open_with_flags(&self.db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        else {
            return 0;
        };
        conn.query_row(
            "SELECT count(*) FROM orders WHERE platform = ?1",
            [&self.shop.name],
            |r| r.get(0),
        )
        .unwrap_or(0)
    }

    /// Whether every order of the shop is stored with the platform's current status.
    fn at_truth(&self) -> bool {
        let conn = self.read();
        let truth = self.shop.sim.truth();
        let mut stmt = conn
            .prepare("SELECT platform_status FROM orders WHERE platform = ?1 AND order_id = ?2")
            .unwrap();
        self.stored() == truth.len() as i64
            && truth.iter().all(|t| {
                stmt.query_row(rusqlite::params![self.shop.name, t.id.to_string()], |r| {
                    r.get::<_, String>(0)
                })
                .is_ok_and(|s| s == t.shipping_status)
            })
    }

    /// Changes the shop while the fault holds: three new orders, and three open orders moved
    /// along. Returns the moved orders' ids.
    fn change_the_shop(&self) -> Vec<u64> {
        let moved: Vec<u64> = self
            .shop
            .sim
            .truth()
            .iter()
            .filter(|t| t.shipping_status == "awaiting" || t.shipping_status == "confirmed")
            .take(3)
            .map(|t| t.id)
            .collect();
        assert_eq!(moved.len(), 3, "the simulator has open orders to move");
        for id in &moved {
            self.shop.sim.set_status(*id, "in_process");
        }
        self.shop.sim.add_orders(3);
        moved
    }

    /// The whole story: the fault bites (runs fail and say why, the daemon stays up, `/health`
    /// reports it), then clears (the store reaches the truth, once).
    async fn fault_then_recovery(
        mut self,
        apply: impl FnOnce(),
        clear: impl FnOnce(),
        fix_words: &str,
    ) {
        let db = self.db.display().to_string();
        let failed_before = self.run.log_lines(&["run failed"]).len();
        apply();
        let moved = self.change_the_shop();
        eventually(20, "two runs failing on the database", || {
            self.run
                .log_lines(&["run failed", "platform=shop", &db])
                .len()
                >= failed_before + 2
        })
        .await;
        let line = self.run.log_lines(&["run failed", &db]).pop().unwrap();
        eprintln!("the daemon says: {line}");
        assert!(
            line.contains(fix_words),
            "the error says the fix ({fix_words}): {line}"
        );
        self.run
            .health_becomes(10, 503, |body| body.contains(&db))
            .await;
        assert!(self.run.alive(), "the daemon keeps running");
        assert!(!self.at_truth(), "the fault really kept the changes out");
        let attempts = self.run.log_lines(&["run failed", &db]).len();
        eventually(
            15,
            "scheduled runs still attempted while the fault holds",
            || self.run.log_lines(&["run failed", &db]).len() > attempts,
        )
        .await;
        assert!(self.run.alive(), "the daemon keeps running");

        clear();
        eventually(30, "the store back at the platform's truth", || {
            self.at_truth()
        })
        .await;
        self.run.health_becomes(10, 200, |_| true).await;
        assert!(
            !self
                .run
                .log_lines(&["database writes succeed again"])
                .is_empty(),
            "the recovery is logged"
        );
        let conn = self.read();
        assert_store_matches(&conn, &self.shop.name, &self.shop.sim.truth());
        assert_events_once(&conn, &self.shop.name, 63, &moved);
        assert!(self.run.alive());
        let status = self.run.stop();
        assert_eq!(status.code(), Some(0), "a clean stop after the fault");
    }
}

/// Exactly one `created` event per order, and exactly one `status_changed` for each moved order
/// (none for the others): nothing lost, nothing written twice.
fn assert_events_once(conn: &Connection, platform: &str, orders: i64, moved: &[u64]) {
    let created = count(
        conn,
        &format!(
            "SELECT count(*) FROM order_events WHERE platform = '{platform}' AND kind = 'created'"
        ),
    );
    let distinct = count(
        conn,
        &format!(
            "SELECT count(DISTINCT order_id) FROM order_events WHERE platform = '{platform}' AND kind = 'created'"
        ),
    );
    assert_eq!(
        (created, distinct),
        (orders, orders),
        "one created event per order"
    );
    let mut stmt = conn
        .prepare(
            "SELECT order_id, count(*) FROM order_events WHERE platform = ?1 AND kind = 'status_changed'
             GROUP BY order_id ORDER BY order_id",
        )
        .unwrap();
    let changed: Vec<(String, i64)> = stmt
        .query_map([platform], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut want: Vec<(String, i64)> = moved.iter().map(|id| (id.to_string(), 1)).collect();
    want.sort();
    assert_eq!(changed, want, "one status_changed event per moved order");
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    match Command::new(cmd).args(args).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("{cmd}: {e}")),
    }
}

/// Whether this process may set the immutable flag here; the reason when not.
fn immutable_permitted(dir: &Path) -> Result<(), String> {
    let probe = dir.join("probe");
    std::fs::write(&probe, b"x").unwrap();
    let r = run("chattr", &["+i", probe.to_str().unwrap()]);
    let _ = run("chattr", &["-i", probe.to_str().unwrap()]);
    let _ = std::fs::remove_file(&probe);
    r
}

/// Clears the immutable flag even when the test fails half-way, so the folder can be removed.
struct Immutable(Vec<PathBuf>);

impl Immutable {
    fn clear(&self) {
        for p in &self.0 {
            let _ = run("chattr", &["-i", p.to_str().unwrap()]);
        }
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        self.clear();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immutable_database_fails_writes_without_stopping_the_daemon_and_it_recovers() {
    if let Err(why) = immutable_permitted(tempfile::tempdir().unwrap().path()) {
        eprintln!("SKIPPED: cannot set the immutable flag here ({why})");
        return;
    }
    let sc = Scenario::start("shop-ro", None, "1s").await;
    // Root ignores file modes, and a mode change does not reach a file the daemon already has
    // open; the immutable flag stops writes through open handles too. Not on -shm: SQLite maps
    // it, and a write to an immutable mapping is SIGBUS, not an error (no tool sets it there).
    let files = vec![
        sc.db.clone(),
        PathBuf::from(format!("{}-wal", sc.db.display())),
    ];
    assert!(files[1].exists(), "the daemon keeps a WAL open");
    let guard = Immutable(files.clone());
    let apply = || {
        for f in &files {
            run("chattr", &["+i", f.to_str().unwrap()]).unwrap();
        }
    };
    sc.fault_then_recovery(apply, || guard.clear(), "lsattr")
        .await;
}

/// A tmpfs mounted for one test, unmounted (lazily, so an open file cannot keep it) at the end.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).unwrap();
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                at.to_str().unwrap(),
            ],
        )?;
        Ok(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = run("umount", &["-l", self.0.to_str().unwrap()]);
    }
}

/// Writes `path` until the filesystem says it is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        if let Err(e) = f.write_all(&chunk).and_then(|_| f.sync_all()) {
            assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "filling: {e}");
            break;
        }
    }
    // The last partial chunk may have left a few bytes: a byte at a time to the brim.
    while f.write_all(&[0]).and_then(|_| f.sync_all()).is_ok() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_without_stopping_the_daemon_and_it_recovers() {
    let holder = tempfile::tempdir().unwrap();
    let fs_dir = holder.path().join("fs");
    let fs = match Tmpfs::mount(&fs_dir, "8m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("SKIPPED: cannot mount a small tmpfs here ({why})");
            return;
        }
    };
    let sc = Scenario::start("shop-ro", Some(fs_dir.join("ordersync.db")), "1s").await;
    let filler = fs_dir.join("filler");
    let apply = || fill(&filler);
    let clear = || std::fs::remove_file(&filler).unwrap();
    sc.fault_then_recovery(apply, clear, "free space").await;
    drop(fs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_past_the_busy_timeout_fails_writes_keeps_the_watchdog_fed_and_clears() {
    let sc = Scenario::start("shop-ro", None, "2s").await;
    let lock = Connection::open(&sc.db).unwrap();
    lock.busy_timeout(Duration::from_secs(10)).unwrap();
    let held = std::cell::Cell::new(None);
    let apply = || {
        // Another program's write transaction: an operator's shell, a migration script.
        lock.execute_batch("BEGIN IMMEDIATE").unwrap();
        held.set(Some(Instant::now()));
    };
    // The lock is held from `apply` through the fault's checks (several busy timeouts long).
    // With a busy timeout longer than half the watchdog interval, a ping that waits for its own
    // turn at the writer comes too late while every job waits out the lock: the watchdog must
    // judge the writer by the jobs it finishes, failed ones included.
    let pings = sc.run.notes.clone();
    let released = std::cell::Cell::new(None);
    let clear = || {
        lock.execute_batch("COMMIT").unwrap();
        released.set(Some(Instant::now()));
    };
    sc.fault_then_recovery(apply, clear, "busy_timeout").await;
    let (from, to) = (held.get().unwrap(), released.get().unwrap());
    assert!(
        to - from > Duration::from_secs(3),
        "held for several busy timeouts: {:?}",
        to - from
    );
    let times: Vec<Instant> = pings
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, m)| m == "WATCHDOG=1")
        .map(|(t, _)| *t)
        .collect();
    let gap = longest_ping_gap(&times, from, to);
    assert!(
        gap < WATCHDOG,
        "systemd would have killed the daemon: no watchdog ping for {gap:?} while the lock was held (WatchdogSec {WATCHDOG:?})"
    );
}

/// Makes `db` read-only to this process the way its user would meet it: the mode for a normal
/// user, the immutable flag for root (who ignores modes). `Err` says why it cannot here.
fn make_read_only(db: &Path) -> Result<Option<Immutable>, String> {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        run("chattr", &["+i", db.to_str().unwrap()])?;
        return Ok(Some(Immutable(vec![db.to_path_buf()])));
    }
    std::fs::set_permissions(db, std::fs::Permissions::from_mode(0o444)).unwrap();
    match std::fs::OpenOptions::new().write(true).open(db) {
        Ok(_) => Err("the file stays writable after chmod 0444".into()),
        Err(_) => Ok(None),
    }
}

fn make_writable(db: &Path, guard: &Option<Immutable>) {
    use std::os::unix::fs::PermissionsExt;
    match guard {
        Some(g) => g.clear(),
        None => std::fs::set_permissions(db, std::fs::Permissions::from_mode(0o644)).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_read_only_at_start_is_reported_and_writes_resume_once_it_is_writable() {
    let shop = Shop::open("shop-ro", 60).await;
    let setup = Setup::new();
    let db = setup.db_path();
    let port = free_port();
    write_main_file(&setup, &db, port, "busy_timeout = \"1s\"");
    setup.add_platform_file(
        "shop.toml",
        &shop.platform_toml("schedule = \"* * * * * *\"\nreconcile_schedule = \"*/2 * * * * *\""),
    );
    let first = setup.ordersync(&["sync"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let guard = match make_read_only(&db) {
        Ok(g) => g,
        Err(why) => {
            eprintln!("SKIPPED: cannot make the database read-only here ({why})");
            return;
        }
    };
    // A daemon (re)started while the file is read-only: SQLite quietly opens it read-only.
    let run = Running::start(&setup, port, WATCHDOG);
    let sc = Scenario {
        shop,
        _setup: setup,
        db: db.clone(),
        run,
    };
    let path = db.display().to_string();
    eventually(30, "ready", || sc.run.ready()).await;
    eventually(10, "the read-only database reported at start", || {
        !sc.run
            .log_lines(&["is read-only to this process", &path, "writable"])
            .is_empty()
    })
    .await;
    assert_eq!(sc.stored(), 60);
    sc.fault_then_recovery(|| {}, || make_writable(&db, &guard), "writable")
        .await;
}

/// A consistent copy of the live database, as `sqlite3 db ".backup b"` makes one.
fn backup_of(db: &Path) -> PathBuf {
    let copy = db.with_file_name("backup.db");
    let _ = std::fs::remove_file(&copy);
    Connection::open(db)
        .unwrap()
        .execute("VACUUM INTO ?1", [copy.to_str().unwrap()])
        .unwrap();
    copy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_moved_over_the_live_database_becomes_the_file_the_daemon_writes() {
    let sc = Scenario::start("shop-mv", None, "1s").await;
    let db = sc.db.display().to_string();
    // The restore an operator does by hand: a backup moved over the live file.
    let backup = backup_of(&sc.db);
    std::fs::rename(&backup, &sc.db).unwrap();
    let moved = sc.change_the_shop();

    // A transition queued into the file now at the path must reach the platform.
    let open = sc
        .shop
        .sim
        .truth()
        .into_iter()
        .find(|t| t.shipping_status == "awaiting" && !moved.contains(&t.id))
        .expect("an order still awaiting")
        .id
        .to_string();
    let out = sc
        ._setup
        .ordersync(&["transition", "shop-mv", &open, "cancelled"]);
    assert!(out.status.success(), "transition: {}", stderr(&out));
    eventually(20, "the queued transition pushed", || {
        sc.shop
            .sim
            .requests()
            .iter()
            .any(|r| r.method != "GET" && r.path_and_query.contains(&open))
    })
    .await;
    eventually(30, "the changes stored in the file at the path", || {
        sc.at_truth()
    })
    .await;
    let replaced = sc.run.log_lines(&["replaced", &db]);
    assert!(
        !replaced.is_empty(),
        "the daemon says the file was replaced and names it:\n{}",
        sc.run.log_text()
    );
    sc.run.health_becomes(10, 200, |_| true).await;
    assert_events_once(&sc.read(), &sc.shop.name, 63, &moved);
    let confirmed = count(
        &sc.read(),
        &format!(
            "SELECT count(*) FROM order_events WHERE kind = 'push_confirmed' AND order_id = '{open}'"
        ),
    );
    assert_eq!(
        confirmed, 1,
        "the pushed transition is confirmed once, in the new file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_database_stops_writes_loudly_until_a_file_is_back_at_its_path() {
    let mut sc = Scenario::start("shop-rm", None, "1s").await;
    let db = sc.db.display().to_string();
    let backup = backup_of(&sc.db);
    let failed_before = sc.run.log_lines(&["run failed"]).len();
    std::fs::remove_file(&sc.db).unwrap();
    let moved = sc.change_the_shop();

    eventually(20, "runs failing because the database is gone", || {
        sc.run.log_lines(&["run failed", &db, "deleted"]).len() >= failed_before + 2
    })
    .await;
    sc.run
        .health_becomes(10, 503, |body| body.contains(&db))
        .await;
    assert!(
        sc.run
            .log_lines(&["run finished"])
            .iter()
            .all(|l| !l.contains("changed=3")),
        "no run reports the changes stored while the file is gone"
    );
    assert!(
        !sc.db.exists(),
        "the daemon does not quietly start a new database"
    );
    assert!(sc.run.alive(), "the daemon keeps running");

    std::fs::rename(&backup, &sc.db).unwrap();
    eventually(30, "the store back at the platform's truth", || {
        sc.at_truth()
    })
    .await;
    sc.run.health_becomes(10, 200, |_| true).await;
    assert_events_once(&sc.read(), &sc.shop.name, 63, &moved);
}
