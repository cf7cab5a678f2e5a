-- Every stored number has explicit bounds, the same as etl/validate.py enforces
-- before loading (README, Validation): prices from 1e-12 to under 1e12, volumes
-- from 0 to under 1e15, a change under 1e12 and a percent change under 1e9
-- either way; split ratios from 1e-9, dividend amounts from 1e-12.
--
-- Rows stored before these bounds (a volume of 1e400 went in as a 401-digit
-- number) are brought inside them first, so the constraints hold for every
-- row: an out-of-bounds optional figure becomes NULL (the next history run
-- fills adj_close, open, high, low and volume again), and a row whose price
-- itself is out of bounds, or an action with an impossible ratio or amount, is
-- deleted (its day is missing again, so the next run asks for it).

UPDATE market_data SET adj_close = NULL WHERE NOT (adj_close >= 1e-12 AND adj_close < 1e12);
UPDATE market_data SET open = NULL WHERE NOT (open >= 1e-12 AND open < 1e12);
UPDATE market_data SET high = NULL, low = NULL
 WHERE NOT (high >= 1e-12 AND high < 1e12) OR NOT (low >= 1e-12 AND low < 1e12);
UPDATE market_data SET volume = NULL WHERE NOT (volume >= 0 AND volume < 1e15);
UPDATE market_data SET change = NULL WHERE NOT (change > -1e12 AND change < 1e12);
UPDATE market_data SET percent_change = NULL WHERE NOT (percent_change > -1e9 AND percent_change < 1e9);
DELETE FROM market_data WHERE NOT (price >= 1e-12 AND price < 1e12);
DELETE FROM corporate_actions WHERE NOT (ratio >= 1e-9) OR NOT (amount >= 1e-12);

ALTER TABLE market_data
    ADD CONSTRAINT market_data_price_bounds CHECK (price >= 1e-12 AND price < 1e12),
    ADD CONSTRAINT market_data_adj_close_bounds CHECK (adj_close >= 1e-12 AND adj_close < 1e12),
    ADD CONSTRAINT market_data_open_bounds CHECK (open >= 1e-12 AND open < 1e12),
    ADD CONSTRAINT market_data_high_bounds CHECK (high >= 1e-12 AND high < 1e12),
    ADD CONSTRAINT market_data_low_bounds CHECK (low >= 1e-12 AND low < 1e12),
    ADD CONSTRAINT market_data_volume_bounds CHECK (volume >= 0 AND volume < 1e15),
    ADD CONSTRAINT market_data_change_bounds CHECK (change > -1e12 AND change < 1e12),
    ADD CONSTRAINT market_data_percent_change_bounds CHECK (percent_change > -1e9 AND percent_change < 1e9);

ALTER TABLE corporate_actions
    ADD CONSTRAINT corporate_actions_ratio_bounds CHECK (ratio >= 1e-9 AND ratio < 1e9),
    ADD CONSTRAINT corporate_actions_amount_bounds CHECK (amount >= 1e-12 AND amount < 1e9);
