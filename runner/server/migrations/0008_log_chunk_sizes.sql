-- Each log chunk's size in bytes and its line count (a chunk's end always ends a line),
-- kept beside it and in a covering index, so that a job page finds its window of the log
-- and the number of its first line from the index alone instead of reading every chunk of
-- a 100 MB log. Chunks stored before this migration are counted once here.
ALTER TABLE log_chunks ADD COLUMN bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE log_chunks ADD COLUMN lines BIGINT NOT NULL DEFAULT 0;
UPDATE log_chunks SET
    bytes = OCTET_LENGTH(body),
    lines = CASE
        WHEN body = '' THEN 0
        WHEN SUBSTR(body, LENGTH(body), 1) = '
' THEN LENGTH(body) - LENGTH(REPLACE(body, '
', ''))
        ELSE LENGTH(body) - LENGTH(REPLACE(body, '
', '')) + 1
    END;
CREATE INDEX log_chunk_sizes ON log_chunks (job_id, seq, bytes, lines);
