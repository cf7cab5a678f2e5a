#!/usr/bin/env bash
# The pipeline end to end on the configured database (the embedded PostgreSQL
# when none is configured): migrate, track a few example assets, run every job,
# show the runs. Fetch jobs that cannot reach their provider report it in one
# line and the script goes on; it fails only if the database cannot be used.
set -uo pipefail

ETL=${ETL:-etl}
EXAMPLE_ASSETS=(AAPL:STOCK MSFT:STOCK VOO:ETF BTC:CRYPTO ETH:CRYPTO EUR/USD:FOREX ^GSPC:INDEX)

"$ETL" migrate || exit $?
"$ETL" assets add "${EXAMPLE_ASSETS[@]}" || exit $?

for job in fetch_historical_market_data fetch_market_data fetch_market_index_data; do
    "$ETL" "$job"
    echo "$job exited with $?"
done

"$ETL" generate_mock_transactions --accounts 3 --months 12 || exit $?
"$ETL" runs --limit 4
