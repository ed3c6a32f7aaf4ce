-- Fee bumps: a settlement transaction replaced with the same nonce and higher fees keeps the hashes it replaced
-- (space-separated, oldest first), since any of them may be the version that is mined.
ALTER TABLE settlements ADD COLUMN earlier_txs TEXT NOT NULL DEFAULT '';
