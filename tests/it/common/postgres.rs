//! A real PostgreSQL server for the tests (and the sync benchmark, which includes this file):
//! found on PATH or in Debian's
//! `/usr/lib/postgresql/<version>/bin`, initialised into a temporary folder with a password for
//! its superuser, listening on a free loopback port (its Unix socket in that folder too), started
//! once per test binary on first use and stopped (`pg_ctl stop -m immediate`) and removed when
//! the binary exits. Each test gets a database of its own (`CREATE DATABASE`), so tests share the
//! server's start-up but never its data. As root (CI), the server programs run as the
//! `postgres` user, since `initdb` refuses root.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;

/// The superuser the tests connect as, and its password.
pub const USER: &str = "ordersync";
pub const PASSWORD: &str = "pg-test-secret-7c1e";

/// How much the server may lose in a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Nothing is flushed (`fsync`, `full_page_writes` and `synchronous_commit` off): a test's
    /// server never outlives a crash, and flushing would only slow the suite.
    None,
    /// As the daemon's SQLite store (WAL, `synchronous = NORMAL`): never corrupt, the last
    /// commits lost in a power cut (`synchronous_commit = off`, everything else PostgreSQL's
    /// defaults). What a benchmark beside SQLite should measure.
    LikeSqlite,
}

pub struct Server {
    /// Holds `data/`, the socket, the log and the password file.
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
    as_postgres: bool,
    /// Whether the server also speaks TLS (openssl was there to make its certificate).
    pub tls: bool,
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
fn find_bin() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if initdb.is_file() {
                // Debian links the programs from elsewhere: pg_ctl finds `postgres` beside the
                // real file.
                let real = std::fs::canonicalize(&initdb).ok()?;
                return real.parent().map(Path::to_path_buf);
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").is_file())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl Server {
    fn run(&self, program: &str, args: &[&str]) {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        // The `postgres` user may not enter the test's working directory.
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run {}: {e}", exe.display());
            });
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn start(durability: Durability) -> Server {
        let bin = find_bin().expect(
            "PostgreSQL's initdb is neither on PATH nor in /usr/lib/postgresql/*/bin: install \
             Debian's postgresql package (.ci/run does)",
        );
        let dir = tempfile::Builder::new()
            .prefix("ordersync-pg-")
            .tempdir()
            .unwrap()
            .keep();
        let as_postgres = is_root();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        let tls = make_certificates(&dir);
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown of {} to postgres", dir.display());
        }
        let server = Server {
            dir: dir.clone(),
            bin,
            port,
            as_postgres,
            tls,
        };
        let data = dir.join("data");
        let (data_s, pwfile_s) = (
            data.to_str().unwrap().to_string(),
            pwfile.to_str().unwrap().to_string(),
        );
        server.run(
            "initdb",
            &[
                "-D",
                &data_s,
                "-U",
                USER,
                "--pwfile",
                &pwfile_s,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let flushing = match durability {
            Durability::None => "-c fsync=off -c full_page_writes=off",
            Durability::LikeSqlite => "",
        };
        let mut options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} {flushing} \
             -c synchronous_commit=off -c max_connections=300",
            dir.display()
        );
        // TLS beside plain TCP (pg_hba's `host` lines take both), for the sslmode tests.
        if tls {
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={0}/server.crt -c ssl_key_file={0}/server.key",
                dir.display()
            ));
        }
        let log = dir.join("log");
        server.run(
            "pg_ctl",
            &[
                "start",
                "-w",
                "-D",
                &data_s,
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
            ],
        );
        server
    }

    /// Stops the server at once and removes its folder.
    pub fn stop(&self) {
        let data = self.dir.join("data");
        let _ = std::panic::catch_unwind(|| {
            self.run(
                "pg_ctl",
                &["stop", "-m", "immediate", "-D", data.to_str().unwrap()],
            )
        });
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// A fresh, empty database on this server.
    pub fn database(&self) -> PgDb {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        admin(self.port, "postgres", &[&format!("CREATE DATABASE {name}")]);
        PgDb {
            port: self.port,
            name,
        }
    }
}

impl Server {
    /// The postmaster's process id (its backends are its children).
    pub fn pid(&self) -> u32 {
        let file = self.dir.join("data/postmaster.pid");
        std::fs::read_to_string(&file)
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no process id in {}", file.display()))
    }

    /// The folder of the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate (PEM) that signed the server's certificate (for `localhost` and
    /// 127.0.0.1), when the server speaks TLS.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.tls.then(|| self.dir.join("ca.crt"))
    }
}

/// A CA and a server certificate it signs, for `localhost` and 127.0.0.1, made with the openssl
/// command; false when there is none.
fn make_certificates(dir: &Path) -> bool {
    let run = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let ok = run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=ordersync test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]) && run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]) && run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
    if ok {
        use std::os::unix::fs::PermissionsExt as _;
        // PostgreSQL refuses a key others may read.
        let _ = std::fs::set_permissions(
            dir.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        );
    }
    ok
}

extern "C" fn stop_server() {
    if let Some(Some(s)) = SERVER.get() {
        s.stop();
    }
}

static SERVER: OnceLock<Option<Server>> = OnceLock::new();

/// The test binary's server, started on first use.
pub fn server() -> &'static Server {
    SERVER
        .get_or_init(|| {
            let s = Server::start(Durability::None);
            // SAFETY: registering a plain function to run at exit.
            unsafe { libc::atexit(stop_server) };
            Some(s)
        })
        .as_ref()
        .expect("server started")
}

/// One test's database.
#[derive(Debug, Clone)]
pub struct PgDb {
    pub port: u16,
    pub name: String,
}

impl PgDb {
    /// `daemon.database` for it (no password: that goes in `database_password_file`).
    pub fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{}", self.port, self.name)
    }

    pub fn target(&self) -> ordersync::config::PgTarget {
        let mut t = ordersync::config::parse_postgres_url(&self.url()).unwrap();
        t.password = Some(PASSWORD.into());
        t
    }

    pub fn database(&self) -> ordersync::config::Database {
        ordersync::config::Database::Postgres(self.target())
    }

    /// Runs statements on it, off any test runtime.
    pub fn execute(&self, statements: &[&str]) {
        admin(self.port, &self.name, statements);
    }

    /// The text of every row `sql` returns, its columns cast to text and joined by `|` (`NULL`
    /// for none): for a test watching a running daemon, where a [`Self::snapshot`] of the
    /// whole database each time would be slow.
    pub fn rows(&self, sql: &str) -> Vec<String> {
        self.try_rows(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// [`Self::rows`], or the server's refusal (a table the daemons have not made yet).
    pub fn try_rows(&self, sql: &str) -> Result<Vec<String>, String> {
        let (port, name, sql) = (self.port, self.name.clone(), sql.to_string());
        on_own_runtime(move || async move {
            let client = connect(port, &name).await;
            Ok(client
                .simple_query(&sql)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                        (0..r.len())
                            .map(|i| r.get(i).unwrap_or("NULL").to_string())
                            .collect::<Vec<_>>()
                            .join("|"),
                    ),
                    _ => None,
                })
                .collect())
        })
    }

    /// Every table of the database copied into an in-memory SQLite database, with its columns'
    /// names and values (BIGINT as INTEGER, TEXT as TEXT): what the tests written against a
    /// SQLite store read. A snapshot: take another after the next write.
    pub fn snapshot(&self) -> Connection {
        let (port, name) = (self.port, self.name.clone());
        let tables = on_own_runtime(move || async move {
            let client = connect(port, &name).await;
            let names: Vec<String> = client
                .query(
                    "SELECT table_name::text FROM information_schema.tables
                     WHERE table_schema = 'public' AND table_type = 'BASE TABLE'
                     ORDER BY table_name",
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            let mut tables = Vec::new();
            for t in names {
                let stmt = client
                    .prepare(&format!("SELECT * FROM \"{t}\" ORDER BY 1"))
                    .await
                    .unwrap();
                let columns: Vec<(String, tokio_postgres::types::Type)> = stmt
                    .columns()
                    .iter()
                    .map(|c| (c.name().to_string(), c.type_().clone()))
                    .collect();
                let rows = client.query(&stmt, &[]).await.unwrap();
                let values: Vec<Vec<rusqlite::types::Value>> = rows
                    .iter()
                    .map(|r| {
                        columns
                            .iter()
                            .enumerate()
                            .map(|(i, (_, ty))| value(r, i, ty))
                            .collect()
                    })
                    .collect();
                tables.push((t, columns, values));
            }
            tables
        });
        let db = Connection::open_in_memory().unwrap();
        for (table, columns, rows) in tables {
            let names: Vec<String> = columns.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            db.execute_batch(&format!("CREATE TABLE \"{table}\" ({})", names.join(", ")))
                .unwrap();
            let marks = vec!["?"; names.len()].join(", ");
            let mut insert = db
                .prepare(&format!("INSERT INTO \"{table}\" VALUES ({marks})"))
                .unwrap();
            for row in rows {
                insert.execute(rusqlite::params_from_iter(row)).unwrap();
            }
        }
        db
    }
}

fn value(
    r: &tokio_postgres::Row,
    i: usize,
    ty: &tokio_postgres::types::Type,
) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    use tokio_postgres::types::Type;
    let v = match *ty {
        Type::INT8 => r.get::<_, Option<i64>>(i).map(V::Integer),
        Type::INT4 => r.get::<_, Option<i32>>(i).map(|v| V::Integer(v.into())),
        Type::FLOAT8 => r.get::<_, Option<f64>>(i).map(V::Real),
        Type::BYTEA => r.get::<_, Option<Vec<u8>>>(i).map(V::Blob),
        Type::BOOL => r.get::<_, Option<bool>>(i).map(|b| V::Integer(b.into())),
        _ => r.get::<_, Option<String>>(i).map(V::Text),
    };
    v.unwrap_or(V::Null)
}

async fn connect(port: u16, dbname: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user(USER)
        .password(PASSWORD)
        .dbname(dbname)
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test server's {dbname}: {e}"));
    tokio::spawn(connection);
    client
}

/// Runs `f` on a runtime of its own in a thread of its own: callable from sync code and from
/// any test's runtime alike.
fn on_own_runtime<T, F, Fut>(f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f())
    })
    .join()
    .unwrap()
}

fn admin(port: u16, dbname: &str, statements: &[&str]) {
    let (dbname, statements): (String, Vec<String>) = (
        dbname.to_string(),
        statements.iter().map(|s| s.to_string()).collect(),
    );
    on_own_runtime(move || async move {
        let client = connect(port, &dbname).await;
        for s in statements {
            client
                .batch_execute(&s)
                .await
                .unwrap_or_else(|e| panic!("{s}: {e}"));
        }
    });
}
