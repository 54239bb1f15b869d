-- The action ledger, first version. Portable SQL: the same statements run on SQLite and
-- PostgreSQL. Dates and times are ISO 8601 text (UTC, `Z`), booleans 0/1, JSON as text, so
-- both stores hold byte-identical values. Sequence numbers and run ids are assigned by
-- Rollbook while it holds the ledger's write lock, so they follow commit order with no gaps.

-- The decision log: one row per recorded run.
CREATE TABLE runs (
    id BIGINT PRIMARY KEY,
    recorded_at TEXT NOT NULL,
    as_of TEXT,
    rollbook_version TEXT,
    evaluated_actions INTEGER NOT NULL,
    new_actions INTEGER NOT NULL,
    detail TEXT NOT NULL
);

-- Every action ever emitted, once, with its current follow-up status.
CREATE TABLE actions (
    id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL UNIQUE,
    run_id BIGINT NOT NULL REFERENCES runs (id),
    policy TEXT NOT NULL,
    rule TEXT NOT NULL,
    verb TEXT NOT NULL,
    subject_kind TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    school_id TEXT NOT NULL,
    as_of TEXT NOT NULL,
    alternative INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'done', 'dismissed')),
    status_changed_at TEXT NOT NULL,
    status_changed_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX actions_school_seq ON actions (school_id, seq);
CREATE INDEX actions_subject ON actions (subject_kind, school_id, subject_id);
CREATE INDEX actions_status ON actions (status, seq);

-- Every status an action has had, oldest first (n = 1 is `open`, when it was recorded).
CREATE TABLE action_history (
    action_id TEXT NOT NULL REFERENCES actions (id),
    n INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'done', 'dismissed')),
    changed_by TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    note TEXT,
    PRIMARY KEY (action_id, n)
);

-- The outbox: an action to deliver to a sink (a webhook URL), written in the same transaction
-- as the action, marked delivered once the sink has acknowledged it.
CREATE TABLE deliveries (
    sink TEXT NOT NULL,
    action_id TEXT NOT NULL REFERENCES actions (id),
    seq BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered')),
    attempts INTEGER NOT NULL,
    last_error TEXT,
    last_attempt_at TEXT,
    delivered_at TEXT,
    PRIMARY KEY (sink, action_id)
);
CREATE INDEX deliveries_pending ON deliveries (sink, state, seq);
