-- Leases for several relayer instances on one queue. An instance claims received items (claimed_by/claimed_until)
-- and batches (worker/lease_until) with SELECT … FOR UPDATE SKIP LOCKED, so instances never build or send the same
-- work; a lease that runs out can be taken over, and each take-over draws a new fencing token from lease_fence,
-- so the instance that lost it is refused when it tries to renew it.
ALTER TABLE items ADD COLUMN claimed_by TEXT;
ALTER TABLE items ADD COLUMN claimed_until DOUBLE PRECISION;
ALTER TABLE batches ADD COLUMN worker TEXT;
ALTER TABLE batches ADD COLUMN lease_until DOUBLE PRECISION;
ALTER TABLE batches ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;
CREATE SEQUENCE lease_fence;
