//! Secrets never leave the process: one shop of every kind configured with
//! distinctive credentials, every command of the binary run against it, and no secret value —
//! nor a credential derived from one — in any stdout, stderr or table of the public database.

use std::io::Read;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use chrono::Utc;
use ordersync::config::PlatformConfig;
use ordersync::platforms::Connector;
use ordersync::store::Store;
use ordersync::sync::{Engine, PassOptions};
use ordersync_sim::{Fault, Faults, akinon, epixel, merchantpro, mitrabunso, sirclo};
use tokio_util::sync::CancellationToken;

const MP_KEY: &str = "S3cr3t-merchantpro-api-key-4410";
const MP_SECRET: &str = "S3cr3t-merchantpro-api-secret-7781";
const MP_WRONG_SECRET: &str = "S3cr3t-merchantpro-WRONG-secret-9931";
const SC_PARTNER: &str = "PARTNER77";
const SC_SECRET: &str = "S3cr3t-sirclo-hmac-secret-5521";
const SC_KEY: &str = "S3cr3t-sirclo-api-key-6632";
const SC_API_SECRET: &str = "S3cr3t-sirclo-api-secret-7743";
const AK_TOKEN: &str = "S3cr3t-akinon-token-8854";
const MB_USER: &str = "0b7c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3";
const MB_TOKEN: &str = "S3cr3t-mitrabunso-token-9965";
const EP_KEY: &str = "S3cr3t-epixel-apikey-1076";
const EP_TOKEN: &str = "S3cr3t-epixel-token-2187";

/// The credentials every shop is configured with.
#[derive(Clone, Copy)]
struct Creds {
    mp_key: &'static str,
    mp_secret: &'static str,
    sc_partner: &'static str,
    sc_secret: &'static str,
    sc_key: &'static str,
    sc_api_secret: &'static str,
    ak_token: &'static str,
    mb_user: &'static str,
    mb_token: &'static str,
    ep_key: &'static str,
    ep_token: &'static str,
}

/// The sweep's credentials: they name their kind, so a leak says at once whose it is.
const SWEEP: Creds = Creds {
    mp_key: MP_KEY,
    mp_secret: MP_SECRET,
    sc_partner: SC_PARTNER,
    sc_secret: SC_SECRET,
    sc_key: SC_KEY,
    sc_api_secret: SC_API_SECRET,
    ak_token: AK_TOKEN,
    mb_user: MB_USER,
    mb_token: MB_TOKEN,
    ep_key: EP_KEY,
    ep_token: EP_TOKEN,
};

/// Credentials with no run of 8 characters in common with any ordinary text (platform names,
/// paths, messages), so that finding any 8-character piece of one anywhere is a leak.
const RANDOM: Creds = Creds {
    mp_key: "Kq3Zr8Vw2Lp7Xm5Tn9Bd",
    mp_secret: "Hj4Fs6Yc1Qe8Wu3Ra7Gx",
    sc_partner: "PARTNER77",
    sc_secret: "Nv2Bt9Mz5Kd1Lc8Pw4Js",
    sc_key: "Xe7Gh3Rq6Ty2Uo9Ia5Sm",
    sc_api_secret: "Df8Vb1Nk4Zx7Cw2Qm6Hl",
    ak_token: "Wr5Ej9Tp3Ys6Ug1Io8Ka",
    mb_user: "0b7c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3",
    mb_token: "Lz4Xc8Vn2Bm6Qa9Ws3Ed",
    ep_key: "Rf7Tg1Yh5Uj3Ik9Ol2Pq",
    ep_token: "Az6Sx2Dc8Fv4Gb1Hn7Jm",
};

impl Creds {
    /// The secret values, and the credentials sent that are built from them.
    fn secrets(&self) -> Vec<String> {
        let mut v: Vec<String> = [
            self.mp_key,
            self.mp_secret,
            self.sc_secret,
            self.sc_key,
            self.sc_api_secret,
            self.ak_token,
            self.mb_token,
            self.ep_key,
            self.ep_token,
        ]
        .map(String::from)
        .to_vec();
        let basic = ordersync_sim::basic_auth_header(self.mp_key, self.mp_secret);
        v.push(basic.trim_start_matches("Basic ").to_string());
        v
    }
}

/// Every value that must never be seen: configured secrets and the credentials built from them.
fn forbidden() -> Vec<String> {
    let mut v: Vec<String> = [
        MP_KEY,
        MP_SECRET,
        MP_WRONG_SECRET,
        SC_SECRET,
        SC_KEY,
        SC_API_SECRET,
        AK_TOKEN,
        MB_TOKEN,
        EP_KEY,
        EP_TOKEN,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for secret in [MP_SECRET, MP_WRONG_SECRET] {
        let basic = ordersync_sim::basic_auth_header(MP_KEY, secret);
        v.push(basic.trim_start_matches("Basic ").to_string());
    }
    // Distinctive fragments, so a truncated or re-encoded secret is caught too.
    for s in [MP_SECRET, SC_SECRET, AK_TOKEN, MB_TOKEN, EP_TOKEN] {
        v.push(s[s.len() - 12..].to_string());
    }
    v
}

fn assert_clean(label: &str, text: &str) {
    for s in forbidden() {
        assert!(
            !text.contains(&s),
            "secret {s:?} leaked in {label}:\n{text}"
        );
    }
}

fn check_output(label: &str, out: &Output) {
    assert_clean(&format!("{label} stdout"), &stdout(out));
    assert_clean(&format!("{label} stderr"), &stderr(out));
}

/// Every column of every row of every table and view, as text.
fn dump_database(setup: &Setup) -> Vec<(String, String)> {
    let db = setup.db();
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut rows = Vec::new();
    for t in tables {
        let mut stmt = db.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let n = stmt.column_count();
        let mut q = stmt.query([]).unwrap();
        while let Some(row) = q.next().unwrap() {
            let mut text = String::new();
            for i in 0..n {
                use rusqlite::types::ValueRef;
                match row.get_ref(i).unwrap() {
                    ValueRef::Text(b) | ValueRef::Blob(b) => {
                        text.push_str(&String::from_utf8_lossy(b));
                    }
                    ValueRef::Integer(x) => text.push_str(&x.to_string()),
                    ValueRef::Real(x) => text.push_str(&x.to_string()),
                    ValueRef::Null => {}
                }
                text.push('\u{1f}');
            }
            rows.push((t.clone(), text));
        }
    }
    rows
}

struct Shops {
    mp: (merchantpro::MerchantProSim, ordersync_sim::RunningSim),
    sc: (sirclo::SircloSim, ordersync_sim::RunningSim),
    ak: (akinon::AkinonSim, ordersync_sim::RunningSim),
    mb: (mitrabunso::MitrabunsoSim, ordersync_sim::RunningSim),
    ep: (epixel::EpixelSim, ordersync_sim::RunningSim),
    start: chrono::DateTime<Utc>,
    creds: Creds,
}

impl Shops {
    async fn start(orders: usize, c: Creds) -> Shops {
        let spacing = chrono::Duration::seconds(90);
        let start = Utc::now() - spacing * (orders as i32 + 10);
        let mp = merchantpro::MerchantProSim::new(merchantpro::SimOptions {
            api_key: c.mp_key.into(),
            api_secret: c.mp_secret.into(),
            orders,
            start,
            spacing,
            ..Default::default()
        });
        let sc = sirclo::SircloSim::new(sirclo::SimOptions {
            partner_id: c.sc_partner.into(),
            secret: c.sc_secret.into(),
            api_key: c.sc_key.into(),
            api_secret: c.sc_api_secret.into(),
            orders,
            start,
            spacing,
            ..Default::default()
        });
        let ak = akinon::AkinonSim::new(akinon::SimOptions {
            token: c.ak_token.into(),
            orders,
            start,
            spacing,
            ..Default::default()
        });
        let mb = mitrabunso::MitrabunsoSim::new(mitrabunso::SimOptions {
            user_id: c.mb_user.into(),
            token: c.mb_token.into(),
            orders,
            start,
            spacing,
            ..Default::default()
        });
        let ep = epixel::EpixelSim::new(epixel::SimOptions {
            api_key: c.ep_key.into(),
            token: c.ep_token.into(),
            orders,
            start,
            spacing,
            ..Default::default()
        });
        Shops {
            mp: (mp.clone(), mp.serve().await.unwrap()),
            sc: (sc.clone(), sc.serve().await.unwrap()),
            ak: (ak.clone(), ak.serve().await.unwrap()),
            mb: (mb.clone(), mb.serve().await.unwrap()),
            ep: (ep.clone(), ep.serve().await.unwrap()),
            start,
            creds: c,
        }
    }

    fn platform_files(&self, extra: &str) -> Vec<(String, String)> {
        let c = self.creds;
        let from = (self.start - chrono::Duration::days(1)).to_rfc3339();
        let table = |name: &str, kind: &str, url: String, more: &str, auth: String| {
            (
                format!("{name}.toml"),
                format!(
                    "[platforms.{name}]\nkind = \"{kind}\"\nbase_url = \"{url}\"\n\
                     backfill_from = \"{from}\"\n{more}{extra}\n[platforms.{name}.auth]\n{auth}"
                ),
            )
        };
        vec![
            table(
                "s-merchantpro",
                "merchantpro",
                self.mp.1.base_url(),
                "",
                format!(
                    "api_key = \"{}\"\napi_secret = \"{}\"\n",
                    c.mp_key, c.mp_secret
                ),
            ),
            table(
                "s-sirclo",
                "sirclo",
                self.sc.1.base_url(),
                "",
                format!(
                    "partner_id = \"{}\"\nsecret = \"{}\"\napi_key = \"{}\"\napi_secret = \"{}\"\n",
                    c.sc_partner, c.sc_secret, c.sc_key, c.sc_api_secret
                ),
            ),
            table(
                "s-akinon",
                "akinon",
                self.ak.1.base_url(),
                "",
                format!("token = \"{}\"\n", c.ak_token),
            ),
            table(
                "s-mitrabunso",
                "mitrabunso",
                self.mb.1.base_url(),
                "",
                format!("user_id = \"{}\"\ntoken = \"{}\"\n", c.mb_user, c.mb_token),
            ),
            table(
                "s-epixel",
                "epixel",
                self.ep.1.base_url(),
                &format!(
                    "api_prefix = \"{}\"\n",
                    epixel::SimOptions::default().api_prefix
                ),
                format!("api_key = \"{}\"\ntoken = \"{}\"\n", c.ep_key, c.ep_token),
            ),
        ]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_any_output_or_the_database() {
    let shops = Shops::start(60, SWEEP).await;
    let setup = Setup::new();
    for (file, toml) in shops.platform_files("max_requests_per_second = 10000\n") {
        setup.add_platform_file(&file, &toml);
    }
    let confirmed = shops
        .mp
        .0
        .truth()
        .into_iter()
        .find(|o| o.shipping_status == "confirmed")
        .expect("a confirmed MerchantPro order")
        .id
        .to_string();
    // A SIRCLO push also sends the api_key/api_secret headers besides the MAC.
    let pending = shops
        .sc
        .0
        .truth()
        .into_iter()
        .find(|o| o.status == "pending")
        .expect("a pending SIRCLO order")
        .id
        .to_string();

    let setup = tokio::task::spawn_blocking(move || {
        let run = |label: &str, args: &[&str], env: &[(&str, &str)]| -> Output {
            let mut c = setup.command(args);
            for (k, v) in env {
                c.env(k, v);
            }
            let out = c.output().unwrap();
            check_output(label, &out);
            out
        };
        let debug = [("ORDERSYNC_DAEMON__LOG_LEVEL", "debug")];

        let out = run("check", &["check"], &debug);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = run("sync", &["sync"], &debug);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).to_lowercase().contains("debug"),
            "debug logs are on: {}",
            stderr(&out)
        );
        for args in [
            &["status"][..],
            &["status", "--json"],
            &["orders", "--json"],
            &["order", "s-merchantpro", &confirmed, "--json"],
            &["events", "--json"],
            &["outbox", "--json"],
        ] {
            let out = run(&args.join(" "), args, &debug);
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        }
        // A refused transition (read-only kind) and an accepted one.
        let out = run(
            "transition refused",
            &["transition", "s-mitrabunso", "1", "shipped"],
            &debug,
        );
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let out = run(
            "transition accepted",
            &["transition", "s-merchantpro", &confirmed, "processing"],
            &debug,
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let out = run(
            "transition accepted (sirclo)",
            &["transition", "s-sirclo", &pending, "accepted"],
            &debug,
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let out = run("push", &["push"], &debug);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = run("outbox --json after push", &["outbox", "--json"], &debug);
        assert_eq!(
            stdout(&out).matches("\"done\"").count(),
            2,
            "both pushes went out: {}",
            stdout(&out)
        );
        let out = run("doctor --json", &["doctor", "--json"], &debug);
        assert!(out.status.success(), "{}", stderr(&out));

        // The error path: one platform with a wrong secret, given through the environment.
        let out = run(
            "sync with a wrong secret",
            &["sync", "s-merchantpro", "--full"],
            &[
                ("ORDERSYNC_DAEMON__LOG_LEVEL", "debug"),
                (
                    "ORDERSYNC_PLATFORMS__S_MERCHANTPRO__AUTH__API_SECRET",
                    MP_WRONG_SECRET,
                ),
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("s-merchantpro"), "{}", stderr(&out));
        let out = run(
            "doctor with a wrong secret",
            &["doctor", "--json"],
            &[(
                "ORDERSYNC_PLATFORMS__S_MERCHANTPRO__AUTH__API_SECRET",
                MP_WRONG_SECRET,
            )],
        );
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

        // The daemon for a few seconds with debug logs, every platform due every second.
        let mut c = setup.command(&["run"]);
        c.env("ORDERSYNC_DAEMON__LOG_LEVEL", "debug")
            .env("ORDERSYNC_DEFAULTS__SCHEDULE", "* * * * * *")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut daemon = Daemon(c.spawn().unwrap());
        let mut out_pipe = daemon.0.stdout.take().unwrap();
        let mut err_pipe = daemon.0.stderr.take().unwrap();
        let out_reader = std::thread::spawn(move || {
            let mut s = Vec::new();
            out_pipe.read_to_end(&mut s).unwrap();
            s
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = Vec::new();
            err_pipe.read_to_end(&mut s).unwrap();
            s
        });
        std::thread::sleep(Duration::from_secs(3));
        // SAFETY: kill(2) on a child we own.
        unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
        let status = daemon.0.wait().unwrap();
        let run_out = String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned();
        let run_err = String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned();
        assert!(status.success(), "run exits cleanly: {status:?}\n{run_err}");
        assert!(!run_err.is_empty(), "the daemon logged something");
        assert_clean("run stdout", &run_out);
        assert_clean("run stderr", &run_err);
        setup
    })
    .await
    .unwrap();

    let rows = dump_database(&setup);
    assert!(
        rows.iter().any(|(t, _)| t == "orders"),
        "orders were stored"
    );
    for (table, row) in &rows {
        assert_clean(&format!("table {table}"), row);
    }
    let db = setup.db();
    assert!(
        count(
            &db,
            "SELECT count(*) FROM sync_runs WHERE error IS NOT NULL"
        ) > 0,
        "the failed sync is recorded (and was checked above)"
    );
}

/// The assertion can fail: a leaked secret, or the Basic credentials built from one, is caught.
#[test]
#[should_panic(expected = "leaked in probe")]
fn a_leaked_secret_is_caught() {
    assert_clean("probe", &format!("GET /orders failed for key {MP_SECRET}"));
}

#[test]
#[should_panic(expected = "leaked in probe")]
fn leaked_basic_credentials_are_caught() {
    let header = ordersync_sim::basic_auth_header(MP_KEY, MP_SECRET);
    assert_clean("probe", &format!("authorization: {header}"));
}

/// Configuration errors name the file and the key, never the value of a secret: a secret of
/// the wrong type, an unknown auth key holding a secret, a TOML syntax error on a secret's line.
#[test]
fn configuration_errors_do_not_echo_secret_values() {
    let cases = [
        format!("api_key = \"{MP_KEY}\"\napi_secret = [\"{MP_SECRET}\"]\n"),
        format!(
            "api_key = \"{MP_KEY}\"\napi_secret = \"{MP_SECRET}\"\napi_sekret = \"{SC_SECRET}\"\n"
        ),
        format!("api_key = \"{MP_KEY}\"\napi_secret = \"{MP_SECRET}\n"),
        format!("api_key = \"{MP_KEY}\"\napi_secret = {{ value = \"{MP_SECRET}\" }}\n"),
    ];
    for auth in cases {
        let setup = Setup::new();
        setup.add_platform_file(
            "bad.toml",
            &format!(
                "[platforms.bad]\nkind = \"merchantpro\"\nbase_url = \"http://127.0.0.1:9\"\n\
                 [platforms.bad.auth]\n{auth}"
            ),
        );
        for args in [
            &["check"][..],
            &["status", "--json"],
            &["sync"],
            &["doctor", "--json"],
        ] {
            let out = setup.ordersync(args);
            assert_eq!(
                out.status.code(),
                Some(78),
                "{args:?} {auth}: {}",
                stderr(&out)
            );
            check_output(&format!("{args:?} with {auth}"), &out);
        }
    }
}

/// Every 8-character piece of every secret of `creds`.
fn pieces(creds: &Creds) -> Vec<String> {
    let mut out = Vec::new();
    for s in creds.secrets() {
        let chars: Vec<char> = s.chars().collect();
        for w in chars.windows(8) {
            out.push(w.iter().collect());
        }
    }
    out
}

fn assert_no_piece(creds: &Creds, label: &str, text: &str) {
    for p in pieces(creds) {
        assert!(
            !text.contains(&p),
            "a piece of a secret ({p:?}) leaked in {label}:\n{text}"
        );
    }
}

/// What the library logged while a test ran (a subscriber for the whole test binary: the other
/// tests here run the binary, whose logs are its own).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn start() -> Captured {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .try_init()
            .expect("the only subscriber of this test binary");
        captured
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

/// Attempts per request in the echo test: a fault queued this many times fails the request.
const ATTEMPTS: u32 = 3;

/// One incremental pass, as the daemon runs it; the error as the CLI prints it.
async fn incremental(
    cfg: &PlatformConfig,
    store: &Store,
    connector: &Connector,
) -> Result<(), String> {
    let cancel = CancellationToken::new();
    let engine = Engine {
        cfg,
        store,
        cancel: &cancel,
        progress: None,
    };
    engine
        .incremental(connector, PassOptions::default())
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:#}"))
}

/// A platform left in debug mode echoes the request, credentials included: as a page the client
/// cannot read (on every attempt, so the run fails), and inside a record the client rejects.
/// No 8-character piece of a secret, or of the Basic credentials built from two, is in the
/// error, the log, `sync_runs` or `rejects`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_echoing_the_credentials_leaks_no_piece_of_them() {
    let logs = Captured::start();
    let shops = Shops::start(12, RANDOM).await;
    let setup = Setup::new();
    for (file, toml) in shops.platform_files("max_requests_per_second = 10000\npage_size = 5\n") {
        setup.add_platform_file(&file, &toml);
    }
    let config = setup.config();
    let store = Store::open_database(&config.daemon.database, config.daemon.busy_timeout)
        .await
        .unwrap();
    let platforms: [(&str, &Faults, &'static str); 5] = [
        ("s-merchantpro", shops.mp.0.faults(), "id"),
        ("s-sirclo", shops.sc.0.faults(), "id"),
        ("s-akinon", shops.ak.0.faults(), "id"),
        ("s-mitrabunso", shops.mb.0.faults(), "order.order_id"),
        ("s-epixel", shops.ep.0.faults(), "id"),
    ];
    for (name, faults, id_field) in platforms {
        let cfg = config.platform(name).unwrap();
        let connector = crate::common::fast_connector(cfg, ATTEMPTS);

        faults.push_n(Fault::EchoRequest, ATTEMPTS as usize);
        let err = incremental(cfg, &store, &connector)
            .await
            .expect_err("every attempt got the debug page");
        assert_eq!(faults.pending(), 0, "{name}: every attempt was answered");
        assert!(err.contains(name) && err.contains("text/html"), "{err}");
        assert_no_piece(&RANDOM, &format!("{name}'s error"), &err);

        faults.push(Fault::RecordEchoingRequest(id_field));
        incremental(cfg, &store, &connector)
            .await
            .unwrap_or_else(|e| panic!("{name}: one rejected record fails no run: {e}"));
        assert_eq!(faults.pending(), 0, "{name}: the record fault was served");
    }

    let db = setup.db();
    let rejects: Vec<(String, String)> = db
        .prepare("SELECT platform, position || ' ' || reason || ' ' || raw FROM rejects")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (name, _, _) in platforms {
        let mine: Vec<&String> = rejects
            .iter()
            .filter(|(p, _)| p == name)
            .map(|(_, r)| r)
            .collect();
        assert_eq!(
            mine.len(),
            1,
            "{name}: the echoing record is rejected: {rejects:?}"
        );
        assert!(mine[0].contains("echoed_request"), "{name}: {}", mine[0]);
    }
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM sync_runs WHERE error LIKE '%text/html%'"
        ),
        5,
        "each platform's failed run is recorded with its error"
    );
    for (table, row) in dump_database(&setup) {
        assert_no_piece(&RANDOM, &format!("table {table}"), &row);
    }
    let logged = logs.text();
    assert!(
        logged.contains("request failed, retrying") && logged.contains("malformed"),
        "the failures were logged: {logged}"
    );
    assert_no_piece(&RANDOM, "the log", &logged);
}
