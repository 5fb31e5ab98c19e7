-- The server's run store. One file for SQLite and PostgreSQL: only types and statements
-- both accept (TEXT, BIGINT; ids come from `counters`, not SERIAL/AUTOINCREMENT; times are
-- RFC 3339 UTC text, which sorts).

CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    next_value BIGINT NOT NULL
);

CREATE TABLE workflows (
    id BIGINT PRIMARY KEY,
    repo TEXT NOT NULL,
    path TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (repo, path)
);

CREATE TABLE runs (
    id BIGINT PRIMARY KEY,
    repo TEXT NOT NULL,
    workflow_id BIGINT NOT NULL,
    run_number BIGINT NOT NULL,
    name TEXT NOT NULL,
    display_title TEXT NOT NULL,
    event TEXT NOT NULL,
    head_branch TEXT NOT NULL,
    head_sha TEXT NOT NULL,
    git_ref TEXT NOT NULL,
    actor TEXT NOT NULL,
    status TEXT NOT NULL,
    conclusion TEXT,
    run_attempt BIGINT NOT NULL,
    head_commit TEXT NOT NULL,
    payload TEXT NOT NULL,
    delivery_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    run_started_at TEXT NOT NULL
);
CREATE INDEX runs_by_repo ON runs (repo, id);

CREATE TABLE attempts (
    run_id BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    actor TEXT NOT NULL,
    status TEXT NOT NULL,
    conclusion TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_id, attempt)
);

CREATE TABLE jobs (
    id BIGINT PRIMARY KEY,
    run_id BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    job_key TEXT NOT NULL,
    name TEXT NOT NULL,
    needs TEXT NOT NULL,
    labels TEXT NOT NULL,
    environment TEXT,
    status TEXT NOT NULL,
    conclusion TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    completed_at TEXT,
    runner_name TEXT
);
CREATE INDEX jobs_by_run ON jobs (run_id, attempt, id);

CREATE TABLE steps (
    job_id BIGINT NOT NULL,
    number BIGINT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    conclusion TEXT,
    started_at TEXT,
    completed_at TEXT,
    PRIMARY KEY (job_id, number)
);

-- Log text arrives in chunks while the job runs; it is masked before it is written.
CREATE TABLE log_chunks (
    job_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE approvals (
    id BIGINT PRIMARY KEY,
    run_id BIGINT NOT NULL,
    job_id BIGINT NOT NULL,
    environment TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    state TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX approvals_by_run ON approvals (run_id);

CREATE TABLE deployments (
    id BIGINT PRIMARY KEY,
    repo TEXT NOT NULL,
    environment TEXT NOT NULL,
    run_id BIGINT NOT NULL,
    job_id BIGINT NOT NULL,
    sha TEXT NOT NULL,
    git_ref TEXT NOT NULL,
    creator TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX deployments_by_repo ON deployments (repo, environment, id);

-- Every webhook delivery, refused ones included (no body is kept).
CREATE TABLE deliveries (
    id BIGINT PRIMARY KEY,
    forge TEXT NOT NULL,
    delivery_id TEXT,
    event TEXT,
    repo TEXT,
    result TEXT NOT NULL,
    status_code BIGINT NOT NULL,
    reason TEXT NOT NULL,
    run_ids TEXT NOT NULL,
    received_at TEXT NOT NULL
);

-- Delivery ids of verified deliveries only: a forged delivery must not be able to claim
-- an id and so block the genuine one.
CREATE TABLE delivery_ids (
    forge TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    PRIMARY KEY (forge, delivery_id)
);

CREATE TABLE artifacts (
    id BIGINT PRIMARY KEY,
    run_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    size_in_bytes BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX artifacts_by_run ON artifacts (run_id);
