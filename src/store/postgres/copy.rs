//! `ordersync migrate-store`: copies a SQLite store into an empty PostgreSQL database, every
//! table with its ids, in one transaction (binary `COPY`, rows streamed from a blocking reader
//! through a bounded channel, so memory stays flat however large the store), sets the id
//! sequences past the copied ids (and past ids SQLite's AUTOINCREMENT already handed out), and
//! then verifies: per table, the row count and a SHA-256 over the rows in key order, each value
//! rendered by the PostgreSQL column's type, computed the same way on both sides.

use std::path::Path;

use rusqlite::types::Value as SqlValue;
use sha2::{Digest, Sha256};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::super::{BUSY_TIMEOUT, connect, migrate};
use super::{Pg, StoreError};
use crate::config::PgTarget;

/// The tables copied, in an order that satisfies every reference, with their key columns (rows
/// are hashed in this order on both sides) and whether `id` is an identity column.
const TABLES: &[(&str, &str, bool)] = &[
    ("orders", "platform, order_id", false),
    ("order_items", "platform, order_id, item_id", false),
    ("order_events", "id", true),
    ("rejects", "id", true),
    ("outbox", "id", true),
    ("sync_state", "platform", false),
    ("sync_runs", "id", true),
    ("sink_state", "sink", false),
    ("store_meta", "key", false),
];

/// One table's figures on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFigures {
    pub table: String,
    pub sqlite_rows: u64,
    pub postgres_rows: u64,
    pub sqlite_hash: String,
    pub postgres_hash: String,
}

impl TableFigures {
    pub fn matches(&self) -> bool {
        self.sqlite_rows == self.postgres_rows && self.sqlite_hash == self.postgres_hash
    }
}

/// What a copy did, table by table.
#[derive(Debug, Clone, Default)]
pub struct CopyReport {
    pub tables: Vec<TableFigures>,
}

impl CopyReport {
    pub fn all_match(&self) -> bool {
        self.tables.iter().all(TableFigures::matches)
    }
}

/// Why a copy did not start or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The target already holds data: copying into it would mix two stores.
    #[error(
        "{location} is not empty ({tables}): migrate-store copies only into an empty database; \
         create a new one (`createdb -O <user> <name>`) or, if this one holds nothing you need, \
         drop and re-create it"
    )]
    NotEmpty { location: String, tables: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<tokio_postgres::Error> for CopyError {
    fn from(e: tokio_postgres::Error) -> Self {
        CopyError::Store(StoreError::Postgres(e))
    }
}

impl From<rusqlite::Error> for CopyError {
    fn from(e: rusqlite::Error) -> Self {
        CopyError::Store(StoreError::Sql(e))
    }
}

/// Copies the SQLite store at `sqlite` into the PostgreSQL database `target` (created tables,
/// no data) and verifies it; `progress` hears each table as it is done.
pub async fn copy_sqlite_to_postgres(
    sqlite: &Path,
    target: &PgTarget,
    mut progress: impl FnMut(&TableFigures),
) -> Result<CopyReport, CopyError> {
    if !sqlite.exists() {
        return Err(StoreError::Other(format!(
            "no SQLite store at {} (daemon.database)",
            sqlite.display()
        ))
        .into());
    }
    // Brings an older store up to the schema the copy expects.
    {
        let mut conn = connect(sqlite, false, BUSY_TIMEOUT)?;
        migrate(&mut conn, sqlite)?;
    }
    let pg = Pg::open(
        target,
        BUSY_TIMEOUT,
        false,
        Default::default(),
        Default::default(),
    )
    .await?;
    let mut client = pg.client().await?;
    refuse_non_empty(&client, &pg.location()).await?;

    let tx = client.transaction().await?;
    // The row the schema made: the copy brings the store's own instance id, which is part of
    // every event id a sink has delivered.
    tx.execute("DELETE FROM store_meta", &[]).await?;
    for (table, key, _) in TABLES {
        copy_table(&tx, sqlite, table, key).await?;
    }
    let sequences = sqlite_sequences(sqlite).await?;
    for (table, _, identity) in TABLES {
        if !identity {
            continue;
        }
        let floor = sequences
            .iter()
            .find(|(t, _)| t == table)
            .map_or(0, |(_, n)| *n);
        // The next id is past both the copied rows and every id SQLite ever handed out: event
        // ids are a public cursor and must never be reused.
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                     greatest((SELECT coalesce(max(id), 0) FROM {table}), $1::bigint, 1),
                     (SELECT count(*) > 0 FROM {table}) OR $1::bigint > 0)"
            ),
            &[&floor],
        )
        .await?;
    }
    tx.commit().await?;

    let mut report = CopyReport::default();
    for (table, key, _) in TABLES {
        let types = column_types(&client, table).await?;
        let (sqlite_rows, sqlite_hash) = hash_sqlite(sqlite, table, key, &types).await?;
        let (postgres_rows, postgres_hash) = hash_postgres(&client, table, key, &types).await?;
        let figures = TableFigures {
            table: table.to_string(),
            sqlite_rows,
            postgres_rows,
            sqlite_hash,
            postgres_hash,
        };
        progress(&figures);
        report.tables.push(figures);
    }
    Ok(report)
}

async fn refuse_non_empty(
    client: &deadpool_postgres::Object,
    location: &str,
) -> Result<(), CopyError> {
    let mut holding = Vec::new();
    for (table, _, _) in TABLES {
        // The instance row every new database gets is not data.
        let sql = if *table == "store_meta" {
            "SELECT count(*) FROM store_meta WHERE key <> 'instance'".to_string()
        } else {
            format!("SELECT count(*) FROM {table}")
        };
        let n: i64 = client.query_one(&sql, &[]).await?.get(0);
        if n > 0 {
            holding.push(format!("{table}: {n} rows"));
        }
    }
    if holding.is_empty() {
        Ok(())
    } else {
        Err(CopyError::NotEmpty {
            location: location.to_string(),
            tables: holding.join(", "),
        })
    }
}

/// The PostgreSQL table's columns and their types, in table order.
async fn column_types(
    client: &impl deadpool_postgres::GenericClient,
    table: &str,
) -> Result<Vec<(String, Type)>, CopyError> {
    let stmt = client
        .prepare(&format!("SELECT * FROM {table} LIMIT 0"))
        .await?;
    Ok(stmt
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), c.type_().clone()))
        .collect())
}

/// The highest id SQLite's AUTOINCREMENT handed out per table.
async fn sqlite_sequences(sqlite: &Path) -> Result<Vec<(String, i64)>, CopyError> {
    let path = sqlite.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<_, CopyError> {
        let conn = connect(&path, true, BUSY_TIMEOUT)?;
        let mut stmt = conn.prepare("SELECT name, seq FROM sqlite_sequence")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    })
    .await
    .map_err(|e| StoreError::Other(format!("reading the SQLite store failed: {e}")))?
}

/// A value of the SQLite store as the PostgreSQL column's type takes it.
#[derive(Debug)]
enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
}

fn cell(v: SqlValue, ty: &Type, column: &str, table: &str) -> Result<Cell, StoreError> {
    let bad = |what: &str| {
        StoreError::Other(format!(
            "{table}.{column} holds {what}, which its PostgreSQL column ({ty}) cannot take"
        ))
    };
    Ok(match (v, ty) {
        (SqlValue::Null, _) => Cell::Null,
        (SqlValue::Integer(i), &Type::INT8) => Cell::Int(i),
        (SqlValue::Text(t), &Type::INT8) => Cell::Int(
            t.trim()
                .parse()
                .map_err(|_| bad("text that is no integer"))?,
        ),
        (SqlValue::Integer(i), &Type::FLOAT8) => Cell::Float(i as f64),
        (SqlValue::Real(f), &Type::FLOAT8) => Cell::Float(f),
        (SqlValue::Blob(b), &Type::BYTEA) => Cell::Bytes(b),
        (SqlValue::Text(t), &Type::TEXT) => Cell::Text(t),
        (SqlValue::Integer(i), &Type::TEXT) => Cell::Text(i.to_string()),
        (SqlValue::Real(f), &Type::TEXT) => Cell::Text(f.to_string()),
        (SqlValue::Blob(_), _) => return Err(bad("a blob")),
        (SqlValue::Real(_), _) => return Err(bad("a real number")),
        (_, _) => return Err(bad("a value")),
    })
}

/// What the hash reads of one value: its kind and its bytes, so `NULL`, `''` and `'0'` and `0`
/// all differ.
fn feed(h: &mut Sha256, c: &Cell) {
    match c {
        Cell::Null => h.update(b"N"),
        Cell::Int(i) => {
            h.update(b"I");
            h.update(i.to_be_bytes());
        }
        Cell::Float(f) => {
            h.update(b"F");
            h.update(f.to_bits().to_be_bytes());
        }
        Cell::Text(t) => {
            h.update(b"T");
            h.update((t.len() as u64).to_be_bytes());
            h.update(t.as_bytes());
        }
        Cell::Bytes(b) => {
            h.update(b"B");
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        }
    }
}

/// Streams `SELECT columns FROM table ORDER BY key` of the SQLite store on a blocking thread,
/// handing the rows over through a bounded channel.
fn stream_sqlite(
    sqlite: &Path,
    table: &'static str,
    key: &'static str,
    types: &[(String, Type)],
) -> tokio::sync::mpsc::Receiver<Result<Vec<Cell>, StoreError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    let (path, types) = (sqlite.to_path_buf(), types.to_vec());
    tokio::task::spawn_blocking(move || {
        let result = (|| -> Result<(), StoreError> {
            let conn = connect(&path, true, BUSY_TIMEOUT)?;
            let names: Vec<&str> = types.iter().map(|(n, _)| n.as_str()).collect();
            let mut stmt = conn.prepare(&format!(
                "SELECT {} FROM {table} ORDER BY {key}",
                names.join(", ")
            ))?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let mut cells = Vec::with_capacity(types.len());
                for (i, (name, ty)) in types.iter().enumerate() {
                    cells.push(cell(r.get::<_, SqlValue>(i)?, ty, name, table)?);
                }
                if tx.blocking_send(Ok(cells)).is_err() {
                    return Ok(());
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e));
        }
    });
    rx
}

async fn copy_table(
    tx: &deadpool_postgres::Transaction<'_>,
    sqlite: &Path,
    table: &'static str,
    key: &'static str,
) -> Result<(), CopyError> {
    let types = column_types(tx, table).await?;
    let names: Vec<&str> = types.iter().map(|(n, _)| n.as_str()).collect();
    let sink = tx
        .copy_in(&format!(
            "COPY {table} ({}) FROM STDIN (FORMAT binary)",
            names.join(", ")
        ))
        .await?;
    let column_types: Vec<Type> = types.iter().map(|(_, t)| t.clone()).collect();
    let writer = BinaryCopyInWriter::new(sink, &column_types);
    let mut writer = std::pin::pin!(writer);
    let mut rows = stream_sqlite(sqlite, table, key, &types);
    while let Some(row) = rows.recv().await {
        let row = row?;
        let values: Vec<Box<dyn ToSql + Sync + Send>> = row
            .into_iter()
            .zip(&column_types)
            .map(|(c, ty)| -> Box<dyn ToSql + Sync + Send> {
                match c {
                    Cell::Null if *ty == Type::INT8 => Box::new(None::<i64>),
                    Cell::Null if *ty == Type::FLOAT8 => Box::new(None::<f64>),
                    Cell::Null if *ty == Type::BYTEA => Box::new(None::<Vec<u8>>),
                    Cell::Null => Box::new(None::<String>),
                    Cell::Int(i) => Box::new(i),
                    Cell::Float(f) => Box::new(f),
                    Cell::Text(t) => Box::new(t),
                    Cell::Bytes(b) => Box::new(b),
                }
            })
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> = values
            .iter()
            .map(|v| v.as_ref() as &(dyn ToSql + Sync))
            .collect();
        writer.as_mut().write(&refs).await?;
    }
    writer.finish().await?;
    Ok(())
}

async fn hash_sqlite(
    sqlite: &Path,
    table: &'static str,
    key: &'static str,
    types: &[(String, Type)],
) -> Result<(u64, String), CopyError> {
    let mut rows = stream_sqlite(sqlite, table, key, types);
    let (mut n, mut h) = (0u64, Sha256::new());
    while let Some(row) = rows.recv().await {
        for c in &row? {
            feed(&mut h, c);
        }
        n += 1;
    }
    Ok((n, hex(&h.finalize())))
}

async fn hash_postgres(
    client: &deadpool_postgres::Object,
    table: &str,
    key: &str,
    types: &[(String, Type)],
) -> Result<(u64, String), CopyError> {
    use futures_util::TryStreamExt as _;
    let names: Vec<&str> = types.iter().map(|(n, _)| n.as_str()).collect();
    let rows = client
        .query_raw(
            &format!("SELECT {} FROM {table} ORDER BY {key}", names.join(", ")),
            std::iter::empty::<&(dyn ToSql + Sync)>(),
        )
        .await?;
    let mut rows = std::pin::pin!(rows);
    let (mut n, mut h) = (0u64, Sha256::new());
    while let Some(r) = rows.try_next().await? {
        for (i, (_, ty)) in types.iter().enumerate() {
            let c = match *ty {
                Type::INT8 => r.get::<_, Option<i64>>(i).map(Cell::Int),
                Type::FLOAT8 => r.get::<_, Option<f64>>(i).map(Cell::Float),
                Type::BYTEA => r.get::<_, Option<Vec<u8>>>(i).map(Cell::Bytes),
                _ => r.get::<_, Option<String>>(i).map(Cell::Text),
            };
            feed(&mut h, &c.unwrap_or(Cell::Null));
        }
        n += 1;
    }
    Ok((n, hex(&h.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
