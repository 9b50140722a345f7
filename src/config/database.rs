//! `daemon.database`: which store the daemon keeps its orders in. A path names a SQLite file (the
//! default, and the demo's store); a `postgres://` or `postgresql://` URL names a PostgreSQL
//! database shared by any number of daemons. This module owns reading the URL: host, port, user,
//! database name, `sslmode` and `sslrootcert`, and refusing a password written into it (the
//! password comes from `daemon.database_password_file`, read like every other secret file).

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::Secret;

/// Where the store lives.
#[derive(Debug, Clone, PartialEq)]
pub enum Database {
    /// A SQLite file (relative paths already resolved against the main file's folder).
    Sqlite(PathBuf),
    Postgres(PgTarget),
}

impl Database {
    /// The SQLite file, if the store is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Database::Sqlite(p) => Some(p),
            Database::Postgres(_) => None,
        }
    }

    /// Whether `text` is a PostgreSQL URL rather than a path.
    pub fn is_postgres_url(text: &str) -> bool {
        let lower = text.trim().to_ascii_lowercase();
        lower.starts_with("postgres://") || lower.starts_with("postgresql://")
    }
}

impl fmt::Display for Database {
    /// The path, or the URL without any password: what messages and logs name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(p) => write!(f, "{}", p.display()),
            Database::Postgres(t) => write!(f, "{t}"),
        }
    }
}

/// How the connection to PostgreSQL is protected, as libpq's `sslmode` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP: only the default for a loopback address or a Unix socket.
    Disable,
    /// TLS, without checking whose certificate the server shows (libpq's meaning of `require`).
    Require,
    /// TLS, the certificate checked against the trusted roots (`sslrootcert`, else the system's)
    /// and the host name: the default for every other host.
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// A PostgreSQL database as `daemon.database` names it, with its password (from
/// `daemon.database_password_file`) kept apart as a [`Secret`].
#[derive(Clone, PartialEq)]
pub struct PgTarget {
    /// A host name or IP address, or the folder of a Unix socket (starts with `/`).
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub password: Option<Secret>,
    pub sslmode: SslMode,
    /// The CA certificate(s) (PEM) to trust instead of the system's roots.
    pub root_cert: Option<PathBuf>,
}

impl PgTarget {
    /// Whether the server is on this machine: a Unix socket or a loopback address.
    pub fn is_local(&self) -> bool {
        is_local_host(&self.host)
    }
}

fn is_local_host(host: &str) -> bool {
    host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl fmt::Display for PgTarget {
    /// `postgres://user@host:port/dbname`, never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.starts_with('/') {
            write!(
                f,
                "postgres://{}@/{}?host={}",
                self.user, self.dbname, self.host
            )
        } else {
            write!(
                f,
                "postgres://{}@{}:{}/{}",
                self.user, self.host, self.port, self.dbname
            )
        }
    }
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PgTarget({self}, sslmode={}, password={})",
            self.sslmode.as_str(),
            if self.password.is_some() {
                "[redacted]"
            } else {
                "none"
            }
        )
    }
}

/// Reads a `postgres://` URL. Every problem is returned (never the URL's password, which is not
/// echoed even when it is the problem).
pub fn parse_postgres_url(text: &str) -> Result<PgTarget, Vec<String>> {
    // `postgres://user@/db?host=/run/postgresql` (a Unix socket) has an empty host, which the
    // URL parser refuses for this scheme: parse it with a stand-in host, then take none.
    let text = text.trim();
    let (scheme, rest) = text.split_once("://").unwrap_or((text, ""));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let no_host = authority.is_empty() || authority.ends_with('@');
    let spelled = if no_host {
        format!("{scheme}://{authority}{NO_HOST}{}", &rest[authority_end..])
    } else {
        text.to_string()
    };
    let url = url::Url::parse(&spelled).map_err(|e| {
        vec![format!(
            "is not a PostgreSQL URL ({e}); write postgres://USER@HOST:PORT/DBNAME"
        )]
    })?;
    let mut errors = Vec::new();
    if url.password().is_some() {
        errors.push(
            "the URL holds a password; remove it from the URL and put it in a file readable \
             only by the daemon's user, named by daemon.database_password_file (for example \
             database_password_file = \"/etc/ordersync/db-password\"): the configuration is \
             read by others and the URL appears in logs"
                .to_string(),
        );
    }
    let mut host = url
        .host_str()
        .filter(|_| !no_host)
        .map(|h| percent_decode(h.trim_start_matches('[').trim_end_matches(']')))
        .unwrap_or_default();
    let mut sslmode = None;
    let mut root_cert = None;
    let mut port = url.port();
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "sslmode" => match v.as_ref() {
                "disable" => sslmode = Some(SslMode::Disable),
                "require" => sslmode = Some(SslMode::Require),
                "verify-full" => sslmode = Some(SslMode::VerifyFull),
                other => errors.push(format!(
                    "sslmode={other} is not supported; use disable (loopback or a Unix socket \
                     only), require (encrypted, certificate not checked) or verify-full \
                     (encrypted and checked, the default for remote hosts)"
                )),
            },
            "sslrootcert" => root_cert = Some(PathBuf::from(v.as_ref())),
            "host" => host = v.into_owned(),
            "port" => match v.parse() {
                Ok(p) => port = Some(p),
                Err(_) => errors.push(format!("port={v} is not a port number")),
            },
            "password" => errors.push(
                "the URL holds a password (password=…); remove it and name a file holding it \
                 with daemon.database_password_file"
                    .to_string(),
            ),
            other => errors.push(format!(
                "the URL parameter `{other}` is not supported; ordersync reads sslmode, \
                 sslrootcert, host and port"
            )),
        }
    }
    if host.is_empty() {
        errors.push(
            "the URL names no host; write postgres://USER@HOST:PORT/DBNAME, or \
             postgres://USER@/DBNAME?host=/run/postgresql for a Unix socket"
                .to_string(),
        );
    }
    let user = percent_decode(url.username());
    if user.is_empty() {
        errors.push(
            "the URL names no user; write postgres://USER@HOST:PORT/DBNAME (the password goes \
             in daemon.database_password_file)"
                .to_string(),
        );
    }
    let dbname = percent_decode(url.path().trim_start_matches('/'));
    if dbname.is_empty() {
        errors
            .push("the URL names no database; write postgres://USER@HOST:PORT/DBNAME".to_string());
    }
    let sslmode = sslmode.unwrap_or(if is_local_host(&host) {
        SslMode::Disable
    } else {
        SslMode::VerifyFull
    });
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(PgTarget {
        host,
        port: port.unwrap_or(5432),
        user,
        dbname,
        password: None,
        sslmode,
        root_cert,
    })
}

/// The stand-in host of a URL written without one.
const NO_HOST: &str = "no-host.invalid";

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_gives_its_parts_and_the_sslmode_a_sysadmin_expects() {
        let t = parse_postgres_url("postgres://orders@db.example.com:5433/shop").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.user.as_str(), t.dbname.as_str()),
            ("db.example.com", 5433, "orders", "shop")
        );
        assert_eq!(t.sslmode, SslMode::VerifyFull);
        let t = parse_postgres_url("postgresql://orders@127.0.0.1/shop").unwrap();
        assert_eq!((t.port, t.sslmode), (5432, SslMode::Disable));
        let t = parse_postgres_url("postgres://orders@/shop?host=/run/postgresql").unwrap();
        assert_eq!(
            (t.host.as_str(), t.sslmode),
            ("/run/postgresql", SslMode::Disable)
        );
        let t = parse_postgres_url("postgres://o@db:1/s?sslmode=require").unwrap();
        assert_eq!(t.sslmode, SslMode::Require);
        assert_eq!(t.to_string(), "postgres://o@db:1/s");
    }

    #[test]
    fn a_password_in_the_url_is_refused_without_being_repeated() {
        let errors = parse_postgres_url("postgres://o:hunter2@db/s").unwrap_err();
        let text = errors.join("\n");
        assert!(text.contains("database_password_file"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
