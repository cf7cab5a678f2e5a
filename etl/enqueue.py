"""Fan a market-data job out over the worker group: one request per chunk of assets, all in one batch.

The batch and its number of chunks are recorded in etl_batches first, then one
request per chunk is published to the job's request topic, the chunks spread
round-robin over its partitions so that every worker of the group gets its
share. Each request carries the batch id and its chunk number in Kafka headers
(`batch_id`, `batch_chunk`), not among the job's options: the worker gives
them to the run, whose row and event carry them, and `etl runs --batch ID`
tells how many chunks are done. Requests are idempotent: a chunk run twice
fetches nothing new the second time.
"""

from __future__ import annotations

import argparse
import logging
import uuid

from etl.assets import active_assets
from etl.batches import record_batch
from etl.cli import CommandParser, asset_list, iso_date, parse_or_exit, positive_int, run_cli, usage_error
from etl.config import Settings
from etl.errors import ConfigError, EtlError
from etl.models import MARKET_ASSET_TYPES, Asset
from etl.registry import JOBS
from etl.utils.db_utils import database

log = logging.getLogger(__name__)

# The jobs whose work is a list of assets, and the asset types --all-active takes for each.
ASSET_TYPES = {
    "fetch_historical_market_data": MARKET_ASSET_TYPES,
    "fetch_market_data": ("STOCK", "ETF", "CRYPTO", "FOREX"),
    "fetch_market_index_data": ("INDEX",),
}
DATED = {"fetch_historical_market_data"}  # the jobs that take --start / --end
DEFAULT_CHUNK = 50


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="etl enqueue", description=__doc__, exit_codes=(0, 1, 2),
                           examples=("etl enqueue fetch_historical_market_data --all-active --chunk 50",
                                     "etl enqueue fetch_market_data --symbols AAPL:STOCK,MSFT:STOCK --chunk 1"))
    parser.add_argument("job", choices=list(ASSET_TYPES), help="the job to run on the workers")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--symbols", type=asset_list, metavar="A:TYPE,B:TYPE", help="these assets")
    which.add_argument("--all-active", action="store_true", help="every active asset of the job's types")
    parser.add_argument("--chunk", type=positive_int, default=DEFAULT_CHUNK, metavar="N",
                        help=f"assets per request (default {DEFAULT_CHUNK})")
    parser.add_argument("--start", type=iso_date, metavar="YYYY-MM-DD", help="historical job: first day")
    parser.add_argument("--end", type=iso_date, metavar="YYYY-MM-DD", help="historical job: last day")
    return parser


def chunked(assets: list[Asset], size: int) -> list[list[Asset]]:
    return [assets[first:first + size] for first in range(0, len(assets), size)]


def request_options(chunk: list[Asset], args: argparse.Namespace) -> dict:
    """The JSON options of one chunk's request, as the worker hands them to the job's parser."""
    options: dict = {"symbols": [asset.spec for asset in chunk]}
    for name in ("start", "end"):
        if getattr(args, name):
            options[name] = getattr(args, name).isoformat()
    return options


def enqueue(args: argparse.Namespace, settings: Settings) -> int:
    from etl.utils.kafka_utils import make_producer
    from etl.worker_kafka import ensure_topics

    if not settings.kafka_bootstrap_servers:
        raise ConfigError("KAFKA_BOOTSTRAP_SERVERS is not set: `etl enqueue` publishes requests for `etl worker`")
    job = JOBS[args.job]
    with database(settings) as conn:
        assets = list(args.symbols) if args.symbols else active_assets(conn, ASSET_TYPES[args.job])
        if not assets:
            print(f"etl enqueue: no assets to request for {args.job}; nothing enqueued")
            return 0
        chunks = chunked(assets, args.chunk)
        batch_id = str(uuid.uuid4())
        with conn.cursor() as cur:
            record_batch(cur, batch_id, job.name, len(chunks), len(assets),
                         {key: value for key, value in request_options([], args).items() if key != "symbols"})
        conn.commit()
    topic = settings.topic(job.request_topic)
    ensure_topics(settings, {topic: job})
    producer = make_producer(settings.kafka_bootstrap_servers)
    try:
        partitions = sorted(producer.partitions_for(topic))
        for number, chunk in enumerate(chunks):
            producer.send(topic, key=f"{batch_id}:{number}", value=request_options(chunk, args),
                          partition=partitions[number % len(partitions)],
                          headers=[("batch_id", batch_id.encode()), ("batch_chunk", str(number).encode())])
        producer.flush()
    except Exception as exc:  # kafka-python raises its own errors for a broker that is down or refuses
        raise EtlError(f"etl enqueue: could not publish the requests of batch {batch_id} to {topic}: {exc} — "
                       "check KAFKA_BOOTSTRAP_SERVERS and enqueue again (requests are idempotent)") from exc
    finally:
        producer.close(timeout=5)
    print(f"batch {batch_id}: {len(chunks)} request(s) of up to {args.chunk} asset(s) ({len(assets)} in all) "
          f"for {job.name} on {topic}; follow it with `etl runs --batch {batch_id}`")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_or_exit(parser, argv)
    if (args.start or args.end) and args.job not in DATED:
        usage_error(parser, f"--start and --end apply to {', '.join(sorted(DATED))} only")
    return run_cli("etl enqueue", lambda settings: enqueue(args, settings))

