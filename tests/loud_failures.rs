//! Failing loudly where it helps and quietly where a Unix tool would, through the real binary:
//! a listing piped into a reader that stops early ends without a panic, and the operator hears
//! about the mistakes that used to pass in silence.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Waits for `child` up to `secs` seconds (killing it past the deadline, so a hang fails the
/// test instead of stalling it).
fn wait_with_deadline(child: &mut std::process::Child, secs: u64, what: &str) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not exit within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `ordersync orders | head -n1`, `events | head -n1` and `outbox | head -n1` (and `--json`
/// documents cut by `head -c`): each listing is
/// far larger than a pipe's buffer, so the command is still writing when its reader goes away.
/// It ends as `head`'s other writers do (exit 0, or killed by SIGPIPE), never with a panic
/// (exit 101, "failed printing to stdout: Broken pipe").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_whose_reader_goes_away_ends_quietly() {
    const ORDERS: usize = 2500;
    let shop = Shop::open("shop-ro", ORDERS).await;
    let setup = Setup::new();
    setup.add_platform_file("shop-ro.toml", &shop.platform_toml(""));
    ordersync::cli::sync(setup.config(), &[], false, true)
        .await
        .unwrap();
    let mut db = setup.db();
    let tx = db.transaction().unwrap();
    tx.execute(
        "INSERT INTO outbox (platform, order_id, action, state, attempts, last_error)
         SELECT platform, order_id, 'cancelled', 'failed', 10, 'HTTP 503: the platform is down'
         FROM orders",
        [],
    )
    .unwrap();
    tx.commit().unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM outbox"), ORDERS as i64);
    assert_eq!(
        count(&db, "SELECT count(*) FROM order_events"),
        ORDERS as i64
    );

    tokio::task::spawn_blocking(move || {
        let limit = ORDERS.to_string();
        let mut wrong = Vec::new();
        for args in [
            &["orders", "--limit", &limit][..],
            &["orders", "--limit", &limit, "--json"],
            &["events"],
            &["events", "--json"],
            &["outbox"],
        ] {
            let what = args.join(" ");
            let mut child = setup
                .command(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // The first line, or the first 4 KiB of a one-line JSON document.
            let mut first = String::new();
            BufReader::new(child.stdout.take().unwrap().take(4096))
                .read_line(&mut first)
                .unwrap();
            assert!(!first.is_empty(), "{what}: printed something");
            // The reader is dropped here: the pipe's read end is closed.
            let status = wait_with_deadline(&mut child, 20, &what);
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            if !err.is_empty() || !(status.success() || status.signal() == Some(libc::SIGPIPE)) {
                wrong.push(format!("{what}: {status:?}, stderr: {err}"));
            }
        }
        assert!(
            wrong.is_empty(),
            "expected exit 0 or SIGPIPE and nothing on stderr:\n{}",
            wrong.join("\n")
        );
    })
    .await
    .unwrap();
}

/// The daemon is the exception: its log reader going away (a closed stderr) must not kill it.
/// It keeps running its schedule, and still stops cleanly on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_outlives_a_closed_log_pipe() {
    let shop = Shop::open("shop-ro", 20).await;
    let setup = Setup::new();
    setup.add_platform_file(
        "shop-ro.toml",
        &shop.platform_toml("schedule = \"* * * * * *\"\n"),
    );
    let mut c = setup.command(&["run"]);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut daemon = Daemon(c.spawn().unwrap());
    drop(daemon.0.stdout.take());
    drop(daemon.0.stderr.take());
    let db = setup.db_path();
    common::running::eventually(20, "three runs after the log pipe closed", || {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            panic!("the daemon died: {status:?}");
        }
        db.exists()
            && rusqlite::Connection::open(&db)
                .and_then(|c| {
                    c.query_row("SELECT count(*) FROM sync_runs", [], |r| r.get::<_, i64>(0))
                })
                .is_ok_and(|n| n >= 3)
    })
    .await;
    assert!(
        daemon.0.try_wait().unwrap().is_none(),
        "the daemon is still running"
    );
    // SAFETY: kill(2) on a child we own.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let status = tokio::task::spawn_blocking(move || {
        let status = wait_with_deadline(&mut daemon.0, 20, "the daemon");
        (status, daemon)
    })
    .await
    .unwrap()
    .0;
    assert!(status.success(), "a clean stop: {status:?}");
}
