-- Deployment reviews: one row per job that waits at an environment's protection rules
-- (the decisions themselves are rows of `approvals`), and the status history of each
-- deployment (GitHub's deployment statuses).

CREATE TABLE reviews (
    id BIGINT PRIMARY KEY,
    run_id BIGINT NOT NULL,
    job_id BIGINT NOT NULL,
    environment TEXT NOT NULL,
    -- waiting | approved | rejected | cancelled
    state TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    decided_at TEXT
);
CREATE INDEX reviews_by_run ON reviews (run_id, state);

CREATE TABLE deployment_statuses (
    id BIGINT PRIMARY KEY,
    deployment_id BIGINT NOT NULL,
    state TEXT NOT NULL,
    creator TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX deployment_statuses_by_deployment ON deployment_statuses (deployment_id, id);
