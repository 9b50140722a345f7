//! Sync bookkeeping: each platform's cursor and in-progress pass (`sync_state`), and the history
//! of runs (`sync_runs`) that `status` and the metrics read.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Store, StoreError, parse_ts, ts};
use crate::model::{PassProgress, PassState, RunRecord};

fn load_pass_state(conn: &Connection, platform: &str) -> Result<PassState, StoreError> {
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
    Ok(pass_state_from_text([cursor, started, from, to], resume))
}

/// A `sync_state` row's cursor, pass start, window and resume token, as either backend reads
/// them: a pass is going only when all four of its columns are there.
pub(super) fn pass_state_from_text(
    times: [Option<String>; 4],
    resume: Option<String>,
) -> PassState {
    let [cursor, started, from, to] = times.map(|t| t.as_deref().and_then(parse_ts));
    let pass = match (started, from, to, resume) {
        (Some(started_at), Some(from), Some(to), Some(resume)) => Some(PassProgress {
            started_at,
            from,
            to,
            resume,
        }),
        _ => None,
    };
    PassState { cursor, pass }
}

pub(super) fn save_pass_state(
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

fn start_run(
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

fn finish_run(conn: &Connection, id: i64, run: &RunRecord) -> Result<(), StoreError> {
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

fn run_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        kind: r.get(0)?,
        started_at: r.get(1)?,
        finished_at: r.get(2)?,
        outcome: r.get(3)?,
        fetched: r.get::<_, i64>(4)? as u64,
        created: r.get::<_, i64>(5)? as u64,
        changed: r.get::<_, i64>(6)? as u64,
        rejected: r.get::<_, i64>(7)? as u64,
        error: r.get(8)?,
    })
}

/// Sync bookkeeping: the pass checkpoint and the run history.
impl Store {
    /// Where `platform`'s incremental sync stands (nothing yet: the default).
    pub async fn load_pass_state(&self, platform: &str) -> Result<PassState, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.load_pass_state(platform).await;
        }
        let platform = platform.to_owned();
        self.read(move |c| load_pass_state(c, &platform)).await
    }

    /// Replaces `platform`'s pass state. A page's checkpoint is saved with the page instead
    /// ([`PageWrite::checkpoint`](crate::model::PageWrite::checkpoint)).
    pub async fn save_pass_state(
        &self,
        platform: &str,
        state: PassState,
    ) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.save_pass_state(platform, state, self.fence()).await;
        }
        let platform = platform.to_owned();
        self.write(move |c| save_pass_state(c, &platform, &state))
            .await
    }

    /// Records that a run of `kind` (`sync`, `reconcile`) started; returns its id for
    /// [`Store::finish_run`].
    pub async fn start_run(
        &self,
        platform: &str,
        kind: &str,
        started_at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.start_run(platform, kind, started_at).await;
        }
        let (platform, kind) = (platform.to_owned(), kind.to_owned());
        self.write(move |c| start_run(c, &platform, &kind, started_at))
            .await
    }

    /// Records how run `id` ended, and forgets the platform's runs beyond the last 1,000.
    pub async fn finish_run(&self, id: i64, run: RunRecord) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.finish_run(id, run, self.fence()).await;
        }
        self.write(move |c| finish_run(c, id, &run)).await
    }

    /// The latest run of `platform`, finished or not.
    pub async fn last_run(&self, platform: &str) -> Result<Option<RunRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.last_run(platform).await;
        }
        let platform = platform.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT kind, started_at, finished_at, outcome, fetched, created, changed,
                        rejected, error
                 FROM sync_runs WHERE platform = ?1 ORDER BY id DESC LIMIT 1",
                params![platform],
                run_from_row,
            )
            .optional()?)
        })
        .await
    }

    /// When the latest successful run of `platform` finished, as stored.
    pub async fn last_success_at(&self, platform: &str) -> Result<Option<String>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.last_success_at(platform).await;
        }
        let platform = platform.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT max(finished_at) FROM sync_runs WHERE platform = ?1 AND outcome = 'ok'",
                params![platform],
                |r| r.get(0),
            )?)
        })
        .await
    }
}
