-- The result and outputs of each job of an attempt, by workflow job id (matrix legs give
-- several rows): what "re-run failed jobs" hands to the next attempt for the jobs it does
-- not run again, so their dependents see the same `needs.<id>.outputs`.
CREATE TABLE job_outputs (
    run_id BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    workflow TEXT NOT NULL,
    job_id TEXT NOT NULL,
    result TEXT NOT NULL,
    outputs TEXT NOT NULL
);
CREATE INDEX job_outputs_by_attempt ON job_outputs (run_id, attempt);
