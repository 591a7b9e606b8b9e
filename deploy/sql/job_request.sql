-- exhaust's request table job_request and its indexes (PostgreSQL).
-- Sunbird's job_request columns; the indexes serve read, list, the
-- worker's poll and the console's list. Every statement is IF NOT
-- EXISTS: safe on Sunbird's existing table. Apply as its owner, then
-- run exhaust with [store] manage_schema = false.

CREATE TABLE IF NOT EXISTS "job_request" (
    tag text NOT NULL,
    request_id text NOT NULL,
    job_id text NOT NULL,
    status text NOT NULL,
    request_data json,
    requested_by text,
    requested_channel text,
    dt_job_submitted timestamp,
    download_urls text[],
    dt_file_created timestamp,
    dt_job_completed timestamp,
    execution_time bigint,
    err_message text,
    iteration int,
    encryption_key text,
    batch_number int,
    processed_batches text,
    PRIMARY KEY (tag, request_id));

ALTER TABLE "job_request" ADD COLUMN IF NOT EXISTS batch_number int;

ALTER TABLE "job_request" ADD COLUMN IF NOT EXISTS processed_batches text;

CREATE INDEX IF NOT EXISTS "job_request_tag_submitted_idx" ON "job_request"
    (tag, dt_job_submitted DESC NULLS LAST, request_id);

CREATE INDEX IF NOT EXISTS "job_request_pending_idx" ON "job_request"
    (job_id, dt_job_submitted, request_id)
    WHERE ((status IN ('SUBMITTED', 'FAILED') AND COALESCE(iteration, 0) < 3) OR status = 'PROCESSING');

CREATE INDEX IF NOT EXISTS "job_request_channel_submitted_idx" ON "job_request"
    (requested_channel, dt_job_submitted DESC NULLS LAST, request_id);
