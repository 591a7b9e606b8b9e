-- exhaust's API token table beside job_request (PostgreSQL), needed only
-- by exhaust-server's [auth] mode = "token". Tokens are kept as
-- SHA-256 hashes.

CREATE TABLE IF NOT EXISTS "exhaust_api_token" (
    id text PRIMARY KEY,
    name text NOT NULL,
    channel text NOT NULL,
    token_hash text NOT NULL,
    created_ms bigint NOT NULL,
    revoked_ms bigint);
