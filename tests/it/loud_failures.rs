//! Failing loudly where it helps and quietly where a Unix tool would, through the real binary:
//! a listing piped into a reader that stops early ends without a panic, and the operator hears
//! about the mistakes that used to pass in silence.

use ordersync::cli::SyncArgs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use ordersync_sim::Fault;

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
    ordersync::cli::sync(
        setup.config(),
        SyncArgs {
            reconcile: false,
            ..SyncArgs::default()
        },
    )
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
    crate::common::running::eventually(20, "three runs after the log pipe closed", || {
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

/// How a quiet `ordersync sync` ended.
struct Quiet {
    code: Option<i32>,
    stderr: String,
}

/// `ordersync sync` with logging off, so stderr holds only what the command itself says.
async fn sync_quietly(setup: Setup, env: &[(&'static str, &'static str)]) -> Quiet {
    let env = env.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut c = setup.command(&["sync"]);
        c.env("ORDERSYNC_DAEMON__LOG_LEVEL", "off");
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        Quiet {
            code: out.status.code(),
            stderr: stderr(&out),
        }
    })
    .await
    .unwrap()
}

/// The summary of a failed `sync` says each platform's error once: the engine's message already
/// holds its cause, which used to be printed a second time after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_states_each_error_once() {
    let shop = Shop::open("shop-ro", 5).await;
    let setup = Setup::new();
    setup.add_platform_file("shop-ro.toml", &shop.platform_toml(""));
    shop.sim.faults().push(Fault::Status(404));
    let Quiet { code, stderr: err } = sync_quietly(setup, &[]).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("platform shop-ro"), "{err}");
    assert_eq!(
        err.matches("HTTP 404").count(),
        1,
        "the error is stated once:\n{err}"
    );
}

/// A redirect is not followed (it could carry the credentials to another host); the error says
/// where the platform pointed, with secrets hidden, and what to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_names_its_location_and_the_fix() {
    let shop = Shop::open("shop-ro", 5).await;
    let setup = Setup::new();
    setup.add_platform_file("shop-ro.toml", &shop.platform_toml(""));
    let key = ordersync_sim::merchantpro::SimOptions::default().api_key;
    shop.sim.faults().push(Fault::Redirect {
        status: 302,
        location: "https://shop.example.ro/api/v2/orders?start=0&key=demo-key",
    });
    let Quiet { code, stderr: err } = sync_quietly(setup, &[]).await;
    assert_eq!(code, Some(1), "{err}");
    for says in [
        "HTTP 302",
        "https://shop.example.ro/api/v2/orders?start=0&key=[redacted]",
        "not followed",
        "base_url",
    ] {
        assert!(err.contains(says), "says {says:?}:\n{err}");
    }
    assert!(
        !err.contains(&key),
        "the key in the location is hidden:\n{err}"
    );
}

const ENV_SECRET: &str = "ORDERSYNC_PLATFORMS__SHOP_RO__AUTH__API_SECRET";

/// A refused secret that came from an environment variable cannot be fixed by a reload (SIGHUP
/// does not re-read the environment): `sync` names the variable, and the daemon says to restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_secret_from_the_environment_is_fixed_by_a_restart_not_a_reload() {
    let shop = Shop::open("shop-ro", 5).await;
    let setup = Setup::new();
    setup.add_platform_file(
        "shop-ro.toml",
        &shop.platform_toml("schedule = \"* * * * * *\"\n"),
    );
    let setup = tokio::task::spawn_blocking(move || {
        let mut c = setup.command(&["sync"]);
        c.env("ORDERSYNC_DAEMON__LOG_LEVEL", "off")
            .env(ENV_SECRET, "a-wrong-secret");
        let out = c.output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(ENV_SECRET), "names the variable:\n{err}");
        assert!(err.contains("restart"), "says to restart:\n{err}");
        setup
    })
    .await
    .unwrap();

    let log = setup.dir.path().join("daemon.log");
    let mut c = setup.command(&["run"]);
    c.env(ENV_SECRET, "a-wrong-secret")
        .env("ORDERSYNC_DAEMON__LOG_FORMAT", "text")
        .stderr(std::fs::File::create(&log).unwrap());
    let daemon = Daemon::spawn(c);
    let refused = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .find(|l| l.contains("credentials refused"))
            .map(str::to_string)
    };
    crate::common::running::eventually(20, "the credentials-refused warning", || {
        refused().is_some()
    })
    .await;
    let line = refused().unwrap();
    drop(daemon);
    assert!(
        line.contains(ENV_SECRET) && line.contains("restart"),
        "says to restart, naming the variable: {line}"
    );
    assert!(!line.contains("and reload"), "no reload advice: {line}");
}

/// `check` with a `platforms_dir` that holds no platform file (empty, or a misspelt path that
/// does not exist) still passes (a configuration without platforms is valid), but warns on
/// stderr, naming the key and the folder.
#[test]
fn check_warns_when_platforms_dir_holds_no_platform_file() {
    let setup = Setup::new();
    let folder = setup.dir.path().join("platforms.d");
    let out = setup.ordersync(&["check"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(stdout(&out).contains("0 platforms"), "{}", stdout(&out));
    assert!(
        err.contains(&format!("daemon.platforms_dir = {}", folder.display()))
            && err.contains("holds no *.toml platform files"),
        "warns about the empty folder:\n{err}"
    );

    let misspelt = setup.dir.path().join("platfroms.d");
    let out = setup
        .command(&["check"])
        .env("ORDERSYNC_DAEMON__PLATFORMS_DIR", "platfroms.d")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("daemon.platforms_dir = {}", misspelt.display()))
            && err.contains("does not exist"),
        "warns about the missing folder:\n{err}"
    );

    std::fs::write(
        folder.join("shop-ro.toml"),
        "[platforms.shop-ro]\nkind = \"merchantpro\"\nbase_url = \"http://127.0.0.1:9\"\n\
         [platforms.shop-ro.auth]\napi_key = \"key-1234\"\napi_secret = \"secret-1234\"\n",
    )
    .unwrap();
    let out = setup.ordersync(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "no warning once a platform file is there");
}
