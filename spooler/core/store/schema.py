"""Every table of the job store, and how a store written by an older labspool is brought
up to date: the one place that says what the database holds.

One SQLite file (``state/labspool.sqlite3``) holds the jobs and their history (the spooler's),
the machine's health and the notices for people, the poison items' starts (both daemons), the
gateway's users, and the result daemon's ledger of shots. Every statement here is idempotent:
each process runs them all when it opens the store. A change that an older labspool could
not read raises :data:`SCHEMA_VERSION`; a column added later is listed in
:data:`ADDED_COLUMNS`, added to an older store as it is opened; an index changes no answer,
so adding one needs no new version.
"""

from __future__ import annotations

import sqlite3

__all__ = ["ADDED_COLUMNS", "SCHEMA_VERSION", "create"]

SCHEMA_VERSION = 5

# -- the spooler's: jobs, their history and experiments, the machine's health, notices ------
_JOBS = """
CREATE TABLE IF NOT EXISTS jobs (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id         TEXT NOT NULL UNIQUE,
    state          TEXT NOT NULL,
    attempt        INTEGER NOT NULL DEFAULT 1,
    backend        TEXT NOT NULL,
    submitter      TEXT,
    source_name    TEXT NOT NULL,
    claim_name     TEXT,
    detail         TEXT NOT NULL DEFAULT '',
    error_message  TEXT,
    queue_key      REAL,
    experiments    INTEGER,
    shots_requested INTEGER,
    shots_expected INTEGER,
    shots_done     INTEGER NOT NULL DEFAULT 0,
    created_at     REAL NOT NULL,
    updated_at     REAL NOT NULL,
    lab_action     TEXT,
    first_shot_at  REAL,
    last_shot_at   REAL,
    shots_made     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, queue_key, seq);
-- the jobs in a state in the order they came (Reader.jobs: RUNNING at every step), not a
-- scan of every job once the statistics (labspool prune) show few in that state
CREATE INDEX IF NOT EXISTS jobs_by_state_seq ON jobs (state, seq);
-- the jobs of a state that changed last (the live page's last ended and last errors)
CREATE INDEX IF NOT EXISTS jobs_by_state_updated ON jobs (state, updated_at, seq);
-- the latest finished jobs of a backend (the estimates' model) without a scan
CREATE INDEX IF NOT EXISTS jobs_by_backend ON jobs (backend, state, updated_at);
-- a user's own jobs in a state (queued ones in queue order), and the jobs of each state per
-- user counted from the index alone (the live page), without a scan
CREATE INDEX IF NOT EXISTS jobs_by_state_submitter ON jobs (state, submitter, queue_key, seq);
CREATE TABLE IF NOT EXISTS transitions (
    job_id     TEXT NOT NULL,
    attempt    INTEGER NOT NULL,
    from_state TEXT,
    to_state   TEXT NOT NULL,
    at         REAL NOT NULL,
    note       TEXT
);
CREATE INDEX IF NOT EXISTS transitions_by_job ON transitions (job_id);
CREATE TABLE IF NOT EXISTS experiments (
    job_id          TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    name            TEXT NOT NULL,
    shots_requested INTEGER NOT NULL,
    shots_expected  INTEGER,
    submitted_at    REAL,
    engaged_at      REAL,
    PRIMARY KEY (job_id, attempt, name)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- jobs changed whose status file may not show it yet (a kill between a commit and the
-- rendering): written in the change's own transaction, cleared once a rendering saw it
CREATE TABLE IF NOT EXISTS unpublished (
    mark   INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS unpublished_by_job ON unpublished (job_id, mark);
-- the machine's health (spooler.core.health): one row, written by the spooler's monitor only
CREATE TABLE IF NOT EXISTS machine_health (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    operational INTEGER NOT NULL,
    reasons     TEXT NOT NULL,
    since       REAL NOT NULL,
    last_check  REAL NOT NULL
);
-- device errors BLACS met on a job's shots (blame: spooler.core.health)
CREATE TABLE IF NOT EXISTS lab_faults (
    fault_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    at        REAL NOT NULL,
    job_id    TEXT,
    attempt   INTEGER,
    shot      TEXT,
    message   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS lab_faults_by_job ON lab_faults (job_id, attempt);
-- messages for the lab's channels, written in the transaction of what they tell, sent by
-- the spooler's notifier (spooler.pipeline.notifications)
CREATE TABLE IF NOT EXISTS notifications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         REAL NOT NULL,
    kind       TEXT NOT NULL,
    job_id     TEXT,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    sent_at    REAL,
    tries      INTEGER NOT NULL DEFAULT 0,
    next_try_at REAL,
    last_error TEXT,
    dropped_at REAL
);
CREATE INDEX IF NOT EXISTS notifications_unsent ON notifications (id) WHERE sent_at IS NULL
    AND dropped_at IS NULL;
"""

# -- both daemons': the starts of items (job files, shots) a crash may have been caused by
# (spooler.core.items: counted, then quarantined) ------------------------------------------
_ITEM_STARTS = """
CREATE TABLE IF NOT EXISTS item_starts (
    daemon   TEXT NOT NULL,
    kind     TEXT NOT NULL,
    key      TEXT NOT NULL,
    starts   INTEGER NOT NULL,
    boot     TEXT NOT NULL,
    first_at REAL NOT NULL,
    last_at  REAL NOT NULL,
    PRIMARY KEY (daemon, kind, key)
);
"""

# -- the gateway's users (spooler.gateway.users): a token's hash, never the token ----------
_USERS = """
CREATE TABLE IF NOT EXISTS gateway_users (
    name            TEXT PRIMARY KEY,
    token_sha256    TEXT NOT NULL,   -- hex; never the token
    operator        INTEGER NOT NULL DEFAULT 0,
    queued_jobs_max INTEGER,         -- NULL: gateway.queued_jobs_max
    job_bytes_max   INTEGER,         -- NULL: gateway.job_bytes_max
    requests_per_s  REAL,            -- NULL: gateway.requests_per_s
    created_at      REAL NOT NULL,   -- when this token was made (a --replace makes a new one)
    last_used_at    REAL
);
"""

# -- the result daemon's ledger of shots (spooler.core.store.shots) -------------------------
_SHOTS = """
CREATE TABLE IF NOT EXISTS shots (
    address      TEXT PRIMARY KEY,
    job_id       TEXT,
    attempt      INTEGER,
    experiment   TEXT,
    shot_index   INTEGER,
    local_path   TEXT NOT NULL,
    state        TEXT NOT NULL,
    sds_path     TEXT,
    size         INTEGER,
    sha256       TEXT,
    memory       TEXT,
    frame        BLOB,
    error        TEXT,
    received_at  REAL NOT NULL,
    archived_at  REAL,
    routines     TEXT
);
CREATE INDEX IF NOT EXISTS shots_by_job ON shots (job_id, attempt, experiment, shot_index);
CREATE INDEX IF NOT EXISTS shots_by_state ON shots (state);
-- an attempt's shots in a state counted (Ledger.archived_count, at every batch) from the
-- index alone; without it the count walked every archived shot of every job
CREATE INDEX IF NOT EXISTS shots_by_attempt_state ON shots (job_id, attempt, state);
-- the machine's last shot (the shots' time-out) without a scan
CREATE INDEX IF NOT EXISTS shots_by_received ON shots (received_at);
-- who is archived where (a new shot must not replace another's archived copy)
CREATE INDEX IF NOT EXISTS shots_by_place ON shots (sds_path);
-- whether a job has a shot archived (since a time): one look-up in this index alone per job
-- (labspool-result reprocess --all, --since), not a DISTINCT over every archived shot
CREATE INDEX IF NOT EXISTS shots_by_job_archived_at ON shots (job_id, state, archived_at);
"""

# -- ``labspool-result reprocess``: the jobs whose outputs were written again ---------------
_REPROCESSING = """
CREATE TABLE IF NOT EXISTS reprocessing (
    job_id        TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    routines      TEXT NOT NULL,
    outputs_done  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, attempt, routines)
);
"""

# -- the result daemon's: what a DONE job's result was made with (spooler.core.store.provenance)
_PROVENANCE = """
CREATE TABLE IF NOT EXISTS provenance (
    job_id     TEXT NOT NULL,
    attempt    INTEGER NOT NULL,
    document   TEXT NOT NULL,  -- JSON: the result header's "provenance"
    written_at REAL NOT NULL,
    PRIMARY KEY (job_id, attempt)
);
"""

# -- rows per state, counted by SQLite in the transaction of every change: the ledger's shots
# (shot_counts) and the jobs (job_counts). The metrics read them at every scrape: a count of the
# ledger's index grew with it (49 ms at 970,000 shots), the jobs' too (about 1 ms per 10,000
# jobs). Each table is made, and filled from its rows, once (_make_counts).
_COUNTED = (
    ("shot_counts", "shots", "shots"),
    ("job_counts", "jobs", "jobs"),
)  # (table, of, column)


def _counts(table: str, of: str, column: str) -> tuple[str, ...]:
    """The statements that make *table* count the rows of *of* per state in *column*, and
    the triggers that keep it (named ``<of>_counted_in``, ``_out``, ``_moved``)."""
    add = (
        f"INSERT INTO {table} (state, {column}) VALUES (NEW.state, 1) "
        f"ON CONFLICT (state) DO UPDATE SET {column} = {column} + 1;"
    )
    take = f"UPDATE {table} SET {column} = {column} - 1 WHERE state = OLD.state;"
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (state TEXT PRIMARY KEY, {column} INTEGER NOT NULL)",
        f"DELETE FROM {table}",
        f"INSERT INTO {table} (state, {column}) SELECT state, COUNT(*) FROM {of} GROUP BY state",
        f"CREATE TRIGGER IF NOT EXISTS {of}_counted_in AFTER INSERT ON {of} BEGIN {add} END",
        f"CREATE TRIGGER IF NOT EXISTS {of}_counted_out AFTER DELETE ON {of} BEGIN {take} END",
        f"CREATE TRIGGER IF NOT EXISTS {of}_counted_moved AFTER UPDATE OF state ON {of} "
        f"WHEN OLD.state IS NOT NEW.state BEGIN {take} {add} END",
    )


# Columns added after version 1: (table, column, declaration), added to older databases.
ADDED_COLUMNS = (
    ("jobs", "lab_action", "TEXT"),  # version 2
    ("jobs", "first_shot_at", "REAL"),  # version 3
    ("jobs", "last_shot_at", "REAL"),
    ("jobs", "shots_made", "INTEGER NOT NULL DEFAULT 0"),  # version 4
    # version 5: how often an experiment's missing shots were made again (spooler.pipeline.recovery)
    ("experiments", "recoveries", "INTEGER NOT NULL DEFAULT 0"),
    ("shots", "routines", "TEXT"),  # the routines' version of a shot's analysis
)

# Indexes on columns of ADDED_COLUMNS: made once the column exists.
_LATER_INDEXES = (
    # the spooler asks for pending lab actions at every step
    "CREATE INDEX IF NOT EXISTS jobs_with_lab_action ON jobs (lab_action, updated_at) "
    "WHERE lab_action IS NOT NULL",
    # the estimates' last shot of any job before a job's first (spooler.core.estimates) looked
    # up, not scanned for
    "CREATE INDEX IF NOT EXISTS jobs_by_last_shot ON jobs (last_shot_at) "
    "WHERE last_shot_at IS NOT NULL",
)


def create(db: sqlite3.Connection) -> None:
    """Make every table and index that is missing, and add the columns an older store lacks.
    (``executescript`` commits on its own: this runs outside any transaction.)"""
    db.executescript(_JOBS + _ITEM_STARTS + _USERS + _SHOTS + _REPROCESSING + _PROVENANCE)
    for table, column, declaration in ADDED_COLUMNS:
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
    for index in _LATER_INDEXES:
        db.execute(index)
    _make_counts(db)


def _make_counts(db: sqlite3.Connection) -> None:
    """Each table of counts (:data:`_COUNTED`) and the triggers that keep it, when missing:
    made and filled from its rows in one transaction (no row written in between is lost)."""
    for table, of, column in _COUNTED:
        if _has_trigger(db, f"{of}_counted_moved"):
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            if not _has_trigger(db, f"{of}_counted_moved"):  # (another process may have)
                for statement in _counts(table, of, column):
                    db.execute(statement)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


def _has_trigger(db: sqlite3.Connection, name: str) -> bool:
    row = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,)
    ).fetchone()
    return row is not None
