//! Network faults: a server that drips its body a byte at a time, one that accepts and never
//! answers, and a host name that does not resolve. Every request ends within the platform's
//! `timeout` with a typed error naming the platform, and the daemon meanwhile keeps syncing its
//! healthy platforms and keeps feeding systemd's watchdog.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::running::*;
use crate::common::*;
use ordersync::http::{ClientOptions, HttpClient, HttpError, Redactor, RequestRetry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(1);
/// How late after the deadline the request may end (scheduling on a loaded 2-core machine).
const SLACK: Duration = Duration::from_millis(600);
const UNRESOLVABLE: &str = "http://ordersync-shop.invalid:8080";

#[derive(Clone, Copy, PartialEq)]
enum Misbehaviour {
    /// A 200 with a long body, one byte every 100 ms.
    Drip,
    /// Accepts, reads the request, never answers.
    Mute,
}

/// When each connection was accepted, and when the client closed it.
type Connections = Arc<Mutex<Vec<(Instant, Option<Instant>)>>>;

/// A loopback server that misbehaves on every connection, recording when each one was accepted
/// and when the client gave up on it.
struct BadServer {
    url: String,
    connections: Connections,
}

impl BadServer {
    async fn start(how: Misbehaviour) -> BadServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Connections::default();
        let log = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                let at = {
                    let mut l = log.lock().unwrap();
                    l.push((Instant::now(), None));
                    l.len() - 1
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    // The request's head; its end does not matter to either misbehaviour.
                    let _ = sock.read(&mut buf).await;
                    if how == Misbehaviour::Drip {
                        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                                    content-length: 100000\r\n\r\n[";
                        if sock.write_all(head.as_bytes()).await.is_err() {
                            log.lock().unwrap()[at].1 = Some(Instant::now());
                            return;
                        }
                    }
                    let mut drip = tokio::time::interval(Duration::from_millis(100));
                    loop {
                        tokio::select! {
                            // The client closing its end is the request ending.
                            r = sock.read(&mut buf) => match r {
                                Ok(0) | Err(_) => break,
                                Ok(_) => {}
                            },
                            _ = drip.tick(), if how == Misbehaviour::Drip => {
                                if sock.write_all(b" ").await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    log.lock().unwrap()[at].1 = Some(Instant::now());
                });
            }
        });
        BadServer { url, connections }
    }

    /// How long each finished connection lasted.
    fn lifetimes(&self) -> Vec<Duration> {
        self.connections
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(from, to)| to.map(|t| t - *from))
            .collect()
    }
}

fn client(platform: &str) -> HttpClient {
    HttpClient::new(
        ClientOptions {
            platform: platform.into(),
            timeout: TIMEOUT,
            max_requests_per_second: 0.0,
            // One attempt: this measures a request, not the retry loop.
            retry: RequestRetry {
                max_attempts: 1,
                ..RequestRetry::default()
            },
        },
        Redactor::default(),
        CancellationToken::new(),
    )
    .unwrap()
}

/// One GET and one push-style request against `base`: the errors they end with and how long
/// each took.
async fn both_requests(base: &str) -> [(Result<(), HttpError>, Duration); 2] {
    tokio::time::timeout(Duration::from_secs(10), requests(base))
        .await
        .expect("the requests never ended")
}

async fn requests(base: &str) -> [(Result<(), HttpError>, Duration); 2] {
    let c = client("shop-x");
    let url = format!("{base}/api/v2/orders");
    let started = Instant::now();
    let read = c
        .execute("orders page", |cl| cl.get(&url), |_| Ok(()))
        .await;
    let read_took = started.elapsed();
    let started = Instant::now();
    let push = c
        .execute_push("status", |cl| cl.put(&url).body("{}"), |_| Ok(()))
        .await;
    [(read, read_took), (push, started.elapsed())]
}

fn assert_within_timeout(what: &str, took: Duration) {
    assert!(
        took <= TIMEOUT + SLACK,
        "{what} took {took:?}, past its {TIMEOUT:?} timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dripping_body_ends_at_the_timeout_as_a_timeout() {
    let server = BadServer::start(Misbehaviour::Drip).await;
    let [(read, read_took), (push, push_took)] = both_requests(&server.url).await;
    for (what, took) in [("the read", read_took), ("the push", push_took)] {
        assert_within_timeout(what, took);
        // Headers came at once: only a deadline on the body read can have ended it.
        assert!(
            took >= TIMEOUT - Duration::from_millis(50),
            "{what}: {took:?}"
        );
    }
    match read {
        Err(HttpError::Transient { reason }) => assert!(reason.contains("timed out"), "{reason}"),
        other => panic!("a read that timed out is transient (retried): {other:?}"),
    }
    match push {
        Err(HttpError::OutcomeUnknown { reason }) => {
            assert!(reason.contains("timed out"), "{reason}")
        }
        other => panic!("a push whose answer never finished may have landed: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_ends_at_the_timeout_as_a_timeout() {
    let server = BadServer::start(Misbehaviour::Mute).await;
    let [(read, read_took), (push, push_took)] = both_requests(&server.url).await;
    for (what, took) in [("the read", read_took), ("the push", push_took)] {
        assert_within_timeout(what, took);
        assert!(
            took >= TIMEOUT - Duration::from_millis(50),
            "{what}: {took:?}"
        );
    }
    assert!(
        matches!(&read, Err(HttpError::Transient { reason }) if reason.contains("timed out")),
        "{read:?}"
    );
    assert!(
        matches!(&push, Err(HttpError::OutcomeUnknown { reason }) if reason.contains("timed out")),
        "{push:?}"
    );
    eventually(2, "both connections closed by the client", || {
        server.lifetimes().len() == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_does_not_resolve_fails_within_the_timeout_and_a_push_never_left() {
    let [(read, read_took), (push, push_took)] = both_requests(UNRESOLVABLE).await;
    assert_within_timeout("the read", read_took);
    assert_within_timeout("the push", push_took);
    assert!(
        matches!(&read, Err(HttpError::Transient { reason }) if reason.contains("ordersync-shop.invalid")),
        "{read:?}"
    );
    // Not OutcomeUnknown: a request that never connected cannot have landed, so the outbox may
    // simply send it again.
    assert!(
        matches!(&push, Err(HttpError::Transient { .. })),
        "{push:?}"
    );
}

/// A MerchantPro platform file pointing at `url`.
fn platform_at(name: &str, url: &str) -> String {
    format!(
        "[platforms.{name}]\nkind = \"merchantpro\"\nbase_url = \"{url}\"\n\
         backfill_from = \"2024-01-01T00:00:00Z\"\nschedule = \"* * * * * *\"\n\
         reconcile_schedule = \"off\"\ntimeout = \"1s\"\n\
         [platforms.{name}.auth]\napi_key = \"k\"\napi_secret = \"s\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_keeps_syncing_and_feeding_the_watchdog_while_three_platforms_hang_or_fail() {
    const WATCHDOG: Duration = Duration::from_secs(2);
    let good = Shop::open("good", 40).await;
    let drip = BadServer::start(Misbehaviour::Drip).await;
    let mute = BadServer::start(Misbehaviour::Mute).await;
    let setup = Setup::new();
    let port = free_port();
    write_main_file(&setup, &setup.db_path(), port, "");
    setup.add_platform_file(
        "good.toml",
        &good.platform_toml("schedule = \"* * * * * *\"\ntimeout = \"1s\""),
    );
    setup.add_platform_file("drip.toml", &platform_at("drip", &drip.url));
    setup.add_platform_file("mute.toml", &platform_at("mute", &mute.url));
    setup.add_platform_file("nodns.toml", &platform_at("nodns", UNRESOLVABLE));
    let mut run = Running::start(&setup, port, WATCHDOG);
    eventually(10, "ready", || run.ready()).await;
    let watched_from = Instant::now();
    let stored = |setup: &Setup| {
        setup.db_path().exists()
            && count(
                &setup.db(),
                "SELECT count(*) FROM orders WHERE platform = 'good'",
            ) == good.sim.truth().len() as i64
    };
    eventually(15, "the good shop synced", || stored(&setup)).await;

    // Each bad platform's requests end within the timeout, again and again, and the log says
    // which platform and why.
    eventually(15, "two timed-out requests at each hanging server", || {
        drip.lifetimes().len() >= 2 && mute.lifetimes().len() >= 2
    })
    .await;
    for (name, server) in [("drip", &drip), ("mute", &mute)] {
        for took in server.lifetimes() {
            assert!(
                took <= TIMEOUT + SLACK,
                "{name}: a connection stayed open {took:?}"
            );
        }
    }
    for (name, why) in [
        ("drip", "timed out"),
        ("mute", "timed out"),
        ("nodns", "ordersync-shop.invalid"),
    ] {
        eventually(10, &format!("{name}'s failed request logged"), || {
            !run.log_lines(&["request failed, retrying", &format!("platform={name}"), why])
                .is_empty()
        })
        .await;
    }

    // The healthy platform keeps syncing meanwhile.
    good.sim.add_orders(5);
    eventually(15, "the good shop's new orders synced", || stored(&setup)).await;
    assert_store_matches(&setup.db(), "good", &good.sim.truth());

    // Watch at least two watchdog intervals, however quick the rest was.
    tokio::time::sleep_until((watched_from + 2 * WATCHDOG).into()).await;
    assert!(run.alive());
    let watched_to = Instant::now();
    let gap = longest_ping_gap(&run.pings_since(watched_from), watched_from, watched_to);
    assert!(
        gap < WATCHDOG,
        "no watchdog ping for {gap:?} (WatchdogSec {WATCHDOG:?}); log:\n{}",
        run.log_text()
    );
    // A hanging request is cut short by shutdown too.
    let stopping = Instant::now();
    assert_eq!(run.stop().code(), Some(0));
    assert!(stopping.elapsed() < Duration::from_secs(5));
}
