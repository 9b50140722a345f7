//! Sync bookkeeping: each platform's cursor and in-progress pass (`sync_state`), and the history
//! of runs (`sync_runs`) that `status` and the metrics read.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{StoreError, parse_ts, ts};
use crate::model::RunRecord;

/// Where a platform's incremental sync stands. `cursor` is the upper bound of the last completed
/// pass; while a pass runs, `pass` holds its frozen window and the token of the next page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassState {
    pub cursor: Option<DateTime<Utc>>,
    pub pass: Option<PassProgress>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassProgress {
    pub started_at: DateTime<Utc>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Opaque to the store: the platform's own page token (a URL, an offset, a page number).
    pub resume: String,
}

pub fn load_pass_state(conn: &Connection, platform: &str) -> Result<PassState, StoreError> {
    let row = conn
        .query_row(
            "SELECT cursor, pass_started_at, pass_from, pass_to, resume FROM sync_state
             WHERE platform = ?1",
            params![platform],
            |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            },
        )
        .optional()?;
    let Some((cursor, started, from, to, resume)) = row else {
        return Ok(PassState::default());
    };
    let pass = match (
        started.as_deref().and_then(parse_ts),
        from.as_deref().and_then(parse_ts),
        to.as_deref().and_then(parse_ts),
        resume,
    ) {
        (Some(started_at), Some(from), Some(to), Some(resume)) => Some(PassProgress {
            started_at,
            from,
            to,
            resume,
        }),
        _ => None,
    };
    Ok(PassState {
        cursor: cursor.as_deref().and_then(parse_ts),
        pass,
    })
}

pub fn save_pass_state(
    conn: &Connection,
    platform: &str,
    state: &PassState,
) -> Result<(), StoreError> {
    let p = state.pass.as_ref();
    conn.prepare_cached(
        "INSERT INTO sync_state (platform, cursor, pass_started_at, pass_from, pass_to, resume)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (platform) DO UPDATE SET cursor = excluded.cursor,
             pass_started_at = excluded.pass_started_at, pass_from = excluded.pass_from,
             pass_to = excluded.pass_to, resume = excluded.resume",
    )?
    .execute(params![
        platform,
        state.cursor.map(ts),
        p.map(|p| ts(p.started_at)),
        p.map(|p| ts(p.from)),
        p.map(|p| ts(p.to)),
        p.map(|p| p.resume.as_str()),
    ])?;
    Ok(())
}

pub fn start_run(
    conn: &Connection,
    platform: &str,
    kind: &str,
    started_at: DateTime<Utc>,
) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO sync_runs (platform, kind, started_at) VALUES (?1, ?2, ?3)",
        params![platform, kind, ts(started_at)],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn finish_run(conn: &Connection, id: i64, run: &RunRecord) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE sync_runs SET finished_at = ?2, outcome = ?3, fetched = ?4, created = ?5,
             changed = ?6, rejected = ?7, error = ?8
         WHERE id = ?1",
        params![
            id,
            run.finished_at,
            run.outcome,
            run.fetched as i64,
            run.created as i64,
            run.changed as i64,
            run.rejected as i64,
            run.error,
        ],
    )?;
    // Keep the history bounded: a run every minute for a year would otherwise be half a million
    // rows nobody reads.
    conn.execute(
        "DELETE FROM sync_runs WHERE id IN (
             SELECT id FROM sync_runs WHERE platform = (SELECT platform FROM sync_runs WHERE id = ?1)
             ORDER BY id DESC LIMIT -1 OFFSET 1000)",
        params![id],
    )?;
    Ok(())
}
