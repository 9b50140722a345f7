//! The database schema as an ordered list of migrations. `PRAGMA user_version` records how many
//! have been applied, so a newer binary upgrades an older database at start and never re-runs a
//! step. The public tables (docs/contract.md §5) keep exactly their documented column names: other
//! programs read them.

pub const MIGRATIONS: &[&str] = &[
    // 1: the public tables and the sync bookkeeping.
    r#"
CREATE TABLE orders (
    platform        TEXT NOT NULL,
    order_id        TEXT NOT NULL,
    number          TEXT NOT NULL,
    status          TEXT NOT NULL,
    platform_status TEXT NOT NULL,
    placed_at       TEXT,
    updated_at      TEXT,
    currency        TEXT,
    total           TEXT,
    customer_name   TEXT,
    tracking_number TEXT,
    content_hash    TEXT NOT NULL,
    first_seen_at   TEXT NOT NULL,
    last_seen_at    TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    -- Last so that reading the small columns never walks the raw JSON's overflow pages.
    raw             TEXT NOT NULL,
    PRIMARY KEY (platform, order_id)
);
CREATE INDEX orders_by_number ON orders (platform, number);
CREATE INDEX orders_by_status ON orders (platform, status);

CREATE TABLE order_items (
    platform   TEXT NOT NULL,
    order_id   TEXT NOT NULL,
    item_id    TEXT NOT NULL,
    sku        TEXT,
    name       TEXT,
    quantity   TEXT NOT NULL,
    unit_price TEXT,
    status     TEXT,
    PRIMARY KEY (platform, order_id, item_id)
) WITHOUT ROWID;

-- AUTOINCREMENT: event ids are a public cursor (`events --after`), so they must never be reused
-- even after the newest rows are deleted.
CREATE TABLE order_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    platform    TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    old_status  TEXT,
    new_status  TEXT,
    changes     TEXT,
    observed_at TEXT NOT NULL
);
CREATE INDEX order_events_by_order ON order_events (platform, order_id);

CREATE TABLE rejects (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    platform    TEXT NOT NULL,
    received_at TEXT NOT NULL,
    position    TEXT NOT NULL,
    reason      TEXT NOT NULL,
    raw         TEXT NOT NULL
);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    platform        TEXT NOT NULL,
    order_id        TEXT NOT NULL,
    action          TEXT NOT NULL,
    params          TEXT NOT NULL DEFAULT '{}',
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'in_flight', 'done', 'failed', 'cancelled')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    last_error      TEXT,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

-- One row per platform: the incremental cursor and, while a pass is under way, where it stands.
-- `resume` is written in the same transaction as each page, which is what makes a killed pass
-- resumable without loss or duplication.
CREATE TABLE sync_state (
    platform        TEXT PRIMARY KEY,
    cursor          TEXT,
    pass_started_at TEXT,
    pass_from       TEXT,
    pass_to         TEXT,
    resume          TEXT
);

CREATE TABLE sync_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    platform    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    outcome     TEXT NOT NULL DEFAULT 'running',
    fetched     INTEGER NOT NULL DEFAULT 0,
    created     INTEGER NOT NULL DEFAULT 0,
    changed     INTEGER NOT NULL DEFAULT 0,
    rejected    INTEGER NOT NULL DEFAULT 0,
    error       TEXT
);
CREATE INDEX sync_runs_by_platform ON sync_runs (platform, id);
"#,
    // 2: outbox delivery bookkeeping the public columns do not carry.
    r#"
-- 1 when the last attempt may have reached the platform (timeout or crash after sending):
-- the next attempt reads the order back before sending again.
ALTER TABLE outbox ADD COLUMN outcome_unknown INTEGER NOT NULL DEFAULT 0;
-- Set when a sync saw the platform in the target status and wrote `push_confirmed`.
ALTER TABLE outbox ADD COLUMN confirmed_at TEXT;
CREATE INDEX outbox_by_order ON outbox (platform, order_id);
"#,
    // 3: which process holds an in-flight entry, so a crashed holder's entries are recovered
    // while a live one's are left alone; and reject de-duplication.
    r#"
ALTER TABLE outbox ADD COLUMN claimed_by INTEGER;
CREATE INDEX rejects_by_position ON rejects (platform, position);
"#,
    // 4: `orders` becomes a view over two tables, so that re-reading an unchanged order (which
    // moves `last_seen_at`) rewrites a ~250-byte row among many on a page instead of the whole
    // page a 3 KB row with its raw JSON fills. A no-change pass used to write one 4 KiB WAL
    // frame per order. Readers see the same columns, in the same order, under the same name.
    r#"
CREATE TABLE order_fields (
    id              INTEGER PRIMARY KEY,
    platform        TEXT NOT NULL,
    order_id        TEXT NOT NULL,
    number          TEXT NOT NULL,
    status          TEXT NOT NULL,
    platform_status TEXT NOT NULL,
    placed_at       TEXT,
    updated_at      TEXT,
    currency        TEXT,
    total           TEXT,
    customer_name   TEXT,
    tracking_number TEXT,
    content_hash    TEXT NOT NULL,
    first_seen_at   TEXT NOT NULL,
    last_seen_at    TEXT NOT NULL,
    last_changed_at TEXT NOT NULL,
    UNIQUE (platform, order_id)
);
-- Keyed by `order_fields.id`: the raw JSON is read and written only when the order changed.
CREATE TABLE order_raw (
    id  INTEGER PRIMARY KEY,
    raw TEXT NOT NULL
);
INSERT INTO order_fields (id, platform, order_id, number, status, platform_status, placed_at,
    updated_at, currency, total, customer_name, tracking_number, content_hash, first_seen_at,
    last_seen_at, last_changed_at)
SELECT rowid, platform, order_id, number, status, platform_status, placed_at, updated_at,
    currency, total, customer_name, tracking_number, content_hash, first_seen_at, last_seen_at,
    last_changed_at
FROM orders;
INSERT INTO order_raw (id, raw) SELECT rowid, raw FROM orders;
DROP TABLE orders;
CREATE INDEX orders_by_number ON order_fields (platform, number);
CREATE INDEX orders_by_status ON order_fields (platform, status);
CREATE VIEW orders AS
SELECT f.platform, f.order_id, f.number, f.status, f.platform_status, f.placed_at, f.updated_at,
    f.currency, f.total, f.customer_name, f.tracking_number, f.content_hash, f.first_seen_at,
    f.last_seen_at, f.last_changed_at, r.raw
FROM order_fields f JOIN order_raw r ON r.id = f.id;
"#,
    // 5: an in-flight entry is held by a lease, not by a process id: a pid is reused (PID 1 of a
    // restarted container is the predecessor's pid) and means nothing across pid namespaces.
    // `claimed_by` is still written, for people reading the table. A reject remembers the order
    // it was for, where the record named one, so a later good read of that order clears it.
    r#"
-- The claiming process's random token, and when its claim lapses unless renewed.
ALTER TABLE outbox ADD COLUMN claim_token TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until TEXT;
ALTER TABLE rejects ADD COLUMN order_id TEXT;
CREATE INDEX rejects_by_order ON rejects (platform, order_id);
"#,
    // 6: change-feed sinks. `cursor` moves only after the receiver acknowledged every event up to
    // it; `epoch` grows with every replay, so a worker that read a batch before the replay
    // cannot move the cursor over the replayed events.
    r#"
CREATE TABLE sink_state (
    sink              TEXT PRIMARY KEY,
    cursor            INTEGER NOT NULL DEFAULT 0,
    epoch             INTEGER NOT NULL DEFAULT 0,
    paused            INTEGER NOT NULL DEFAULT 0,
    -- Why the sink stopped on its own (its receiver answered 410), until it is resumed.
    disabled          TEXT,
    delivered         INTEGER NOT NULL DEFAULT 0,
    failed_attempts   INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT,
    last_error_at     TEXT,
    last_delivered_at TEXT,
    created_at        TEXT NOT NULL
);
-- This database's random identity, part of every delivered event's id: a database started
-- afresh numbers its events from 1 again, and a receiver de-duplicating by id must not take
-- them for events it has already seen.
CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO store_meta (key, value) VALUES ('instance', lower(hex(randomblob(6))));
"#,
];
