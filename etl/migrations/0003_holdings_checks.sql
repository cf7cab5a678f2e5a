-- Holdings never go negative: a transaction that would overdraw an account is a bug
-- in its producer, and the holdings update fails (and rolls back) instead of storing it.
ALTER TABLE holdings ADD CONSTRAINT holdings_balance_not_negative CHECK (total_balance >= 0);
ALTER TABLE holdings_monthly ADD CONSTRAINT holdings_monthly_balance_not_negative CHECK (total_balance >= 0);
