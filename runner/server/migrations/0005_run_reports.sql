-- What a run reports besides its log: annotations (`::error file=…,line=…::`), step
-- summaries (`$GITHUB_STEP_SUMMARY`), and a deployment's health measurements and outcome
-- (succeeded, failed, rolled back). Masked before they are written. Keyed by run and
-- environment, so the deployments page finds them whichever deployment row they belong to.

CREATE TABLE annotations (
    id BIGINT PRIMARY KEY,
    run_id BIGINT NOT NULL,
    job_id BIGINT NOT NULL,
    -- notice | warning | failure (GitHub's annotation_level)
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    title TEXT,
    path TEXT,
    start_line BIGINT,
    start_column BIGINT,
    created_at TEXT NOT NULL
);
CREATE INDEX annotations_by_run ON annotations (run_id, id);
CREATE INDEX annotations_by_job ON annotations (job_id, id);

CREATE TABLE step_summaries (
    job_id BIGINT NOT NULL,
    step BIGINT NOT NULL,
    run_id BIGINT NOT NULL,
    markdown TEXT NOT NULL,
    PRIMARY KEY (job_id, step)
);
CREATE INDEX step_summaries_by_run ON step_summaries (run_id);

CREATE TABLE health_measurements (
    id BIGINT PRIMARY KEY,
    run_id BIGINT NOT NULL,
    environment TEXT NOT NULL,
    probe TEXT NOT NULL,
    seq BIGINT NOT NULL,
    -- successful | failed | error
    phase TEXT NOT NULL,
    status_code BIGINT,
    value TEXT,
    latency_ms BIGINT NOT NULL,
    message TEXT,
    measured_at TEXT NOT NULL
);
CREATE INDEX health_measurements_by_run ON health_measurements (run_id, environment, id);

CREATE TABLE deployment_outcomes (
    id BIGINT PRIMARY KEY,
    run_id BIGINT NOT NULL,
    environment TEXT NOT NULL,
    -- succeeded | failed | rolled_back
    kind TEXT NOT NULL,
    sha TEXT NOT NULL,
    -- rolled_back: the version it went back to, and whether health passed after it
    to_sha TEXT,
    healthy BIGINT,
    url TEXT,
    message TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX deployment_outcomes_by_run ON deployment_outcomes (run_id, environment, id);
