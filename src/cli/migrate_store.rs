//! `ordersync migrate-store --to postgres://…`: moves an installation's SQLite store into an
//! empty PostgreSQL database, printing each table's figures on both sides and failing on any
//! difference. The copy and the verification are the store's; this is the command around them.

use std::io::Write as _;
use std::path::Path;

use super::Exit;
use crate::config::{Config, Secret, parse_postgres_url};
use crate::store::{TableFigures, copy_sqlite_to_postgres};

pub(super) async fn run(
    config: &Config,
    to: &str,
    password_file: Option<&Path>,
) -> Result<(), Exit> {
    let Some(sqlite) = config.daemon.database.sqlite_path() else {
        return Err(Exit::usage(format!(
            "daemon.database already names a PostgreSQL database ({}); migrate-store copies the \
             SQLite store daemon.database names into the database given by --to",
            config.daemon.database
        )));
    };
    let mut target = parse_postgres_url(to).map_err(|problems| {
        Exit::usage(format!("--to {}: {}", redacted(to), problems.join("; ")))
    })?;
    target.password = match password_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Exit::usage(format!("--password-file {}: {e}", path.display())))?;
            let text = text.trim_end();
            if text.is_empty() {
                return Err(Exit::usage(format!(
                    "--password-file {} is empty",
                    path.display()
                )));
            }
            Some(Secret::new(text))
        }
        None => config.daemon.database_password.clone(),
    };
    println!("copying {} into {target}", sqlite.display());
    let print = |f: &TableFigures| {
        let _ = writeln!(
            std::io::stdout(),
            "{:<13} sqlite {:>9} rows {}  postgres {:>9} rows {}  {}",
            f.table,
            f.sqlite_rows,
            &f.sqlite_hash[..16],
            f.postgres_rows,
            &f.postgres_hash[..16],
            if f.matches() { "equal" } else { "DIFFERENT" }
        );
    };
    let report = copy_sqlite_to_postgres(sqlite, &target, print)
        .await
        .map_err(Exit::failure)?;
    if !report.all_match() {
        let differ: Vec<&str> = report
            .tables
            .iter()
            .filter(|t| !t.matches())
            .map(|t| t.table.as_str())
            .collect();
        return Err(Exit::failure(anyhow::anyhow!(
            "the copy differs from the SQLite store in {}: do not switch daemon.database to it; \
             drop and re-create the PostgreSQL database and run migrate-store again",
            differ.join(", ")
        )));
    }
    println!(
        "every table equal. Now set daemon.database = \"{target}\" (with \
         database_password_file naming the password's file) and start the daemon"
    );
    Ok(())
}

/// The URL as given, without a password in it.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("[redacted]"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
