-- The facilitator's store on PostgreSQL: settlements (idempotent /settle), API keys with their limits, the limits'
-- state, usage records and receipts. Amounts are decimal text (uint256), as in the SQLite store.
CREATE TABLE settlements (
    key TEXT PRIMARY KEY,
    payer TEXT NOT NULL,
    pay_to TEXT NOT NULL,
    token TEXT NOT NULL,
    network TEXT NOT NULL,
    scheme TEXT NOT NULL,
    amount TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('submitted', 'settled', 'failed')),
    transaction_hash TEXT NOT NULL,
    raw_tx BYTEA NOT NULL,
    error_reason TEXT,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX settlements_by_tx ON settlements (transaction_hash);

CREATE TABLE api_keys (
    name TEXT PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    limits TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE rate_state (
    key_name TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    tat DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (key_name, endpoint)
);
CREATE TABLE quota_windows (
    key_name TEXT NOT NULL,
    asset TEXT NOT NULL,
    period BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    used TEXT NOT NULL,
    PRIMARY KEY (key_name, asset, period, window_start)
);
CREATE TABLE quota_holds (
    hold_id TEXT PRIMARY KEY,
    key_name TEXT NOT NULL,
    asset TEXT NOT NULL,
    amount TEXT NOT NULL,
    windows TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('held', 'spent', 'released')),
    payment_id TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX quota_holds_by_payment ON quota_holds (payment_id);
CREATE TABLE usage_records (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL,
    key_name TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    payer TEXT,
    pay_to TEXT,
    asset TEXT,
    amount TEXT,
    scheme TEXT,
    network TEXT,
    transaction_hash TEXT,
    block_number BIGINT,
    payment_id TEXT
);
CREATE INDEX usage_by_key_time ON usage_records (key_name, at);
CREATE TABLE receipts (
    payment_id TEXT PRIMARY KEY,
    key_name TEXT NOT NULL,
    network TEXT NOT NULL,
    transaction_hash TEXT NOT NULL,
    block_number BIGINT NOT NULL,
    block_hash TEXT NOT NULL,
    log_index BIGINT NOT NULL,
    asset TEXT NOT NULL,
    payer TEXT NOT NULL,
    pay_to TEXT NOT NULL,
    amount TEXT NOT NULL,
    scheme TEXT NOT NULL,
    payload_digest TEXT NOT NULL,
    settled_at DOUBLE PRECISION NOT NULL,
    UNIQUE (transaction_hash, log_index)
);
CREATE INDEX receipts_by_key_time ON receipts (key_name, settled_at);
