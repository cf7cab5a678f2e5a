"""The database in use: `etl db url` prints its connection string, `etl db stop` stops the embedded server.

With neither DATABASE_URL nor DB_HOST set, the jobs use an embedded PostgreSQL
under ETL_DATA_DIR and leave it running for the next command; `etl db url`
starts it if needed, so `psql "$(etl db url --show-password)"` always connects.
The password is masked unless --show-password. `etl db stop` stops the embedded
server (the next command starts it again); a configured server is yours to stop.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from urllib.parse import quote

from etl.cli import CommandParser, parse_or_exit, run_cli
from etl.config import Settings
from etl.errors import ConfigError, EtlError
from etl.utils import db_utils
from etl.utils.log_utils import redact

STOP_WAIT_SECONDS = 60


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="etl db", description=__doc__,
                           examples=('psql "$(etl db url --show-password)"', "etl db stop"))
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    url = actions.add_parser(
        "url", help="print the connection string of the database in use",
        description="Print the libpq connection string of the database the jobs use (DATABASE_URL,\n"
                    "DB_HOST…, else the embedded PostgreSQL, started if needed), with DB_SCHEMA as\n"
                    "search_path; the password masked unless --show-password.",
        examples=('psql "$(etl db url --show-password)"',))
    url.add_argument("--show-password", action="store_true", help="print the password instead of ***")
    actions.add_parser(
        "stop", help="stop the embedded PostgreSQL (a configured server is left alone)",
        description="Stop the embedded PostgreSQL under ETL_DATA_DIR (a fast shutdown: open\n"
                    "transactions are rolled back); the next command starts it again. With\n"
                    "DATABASE_URL or DB_HOST set it stops nothing and exits 2.",
        examples=("etl db stop",))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_or_exit(build_parser(), argv)
    return run_cli("etl db", lambda settings: _url(args, settings) if args.action == "url" else _stop(settings))


def connection_url(settings: Settings) -> str:
    """The libpq URI of the database in use (the embedded one started if needed), password included."""
    if settings.database_url:
        url = settings.database_url
    elif settings.db_host:
        user = quote(settings.db_user or "", safe="")
        password = f":{quote(settings.db_password, safe='')}" if settings.db_password else ""
        credentials = f"{user}{password}@" if user or password else ""
        url = f"postgresql://{credentials}{settings.db_host}:{settings.db_port}/{quote(settings.db_name or '')}"
    else:
        url = db_utils.embedded_database_url(settings)
    if settings.db_schema != "public" and "search_path" not in url:
        url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{settings.db_schema}"
    return url


def _url(args, settings: Settings) -> int:
    url = connection_url(settings)
    print(url if args.show_password else redact(url))
    return 0


def _stop(settings: Settings) -> int:
    if settings.database_url or settings.db_host:
        raise ConfigError(f"etl db stop stops only the embedded PostgreSQL; the database in use is "
                          f"{db_utils.describe_target(settings)} (DATABASE_URL or DB_HOST) — stop that server "
                          "the way it was started")
    pgdata = settings.data_dir / "pgdata"
    pid = _postmaster_pid(pgdata)
    if pid is None:
        print(f"the embedded PostgreSQL in {pgdata} is not running")
        return 0
    os.kill(pid, signal.SIGINT)  # PostgreSQL's fast shutdown: roll back open transactions, stop cleanly
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    while _alive(pid):
        if time.monotonic() > deadline:
            raise EtlError(f"the embedded PostgreSQL (pid {pid}) in {pgdata} did not stop within "
                           f"{STOP_WAIT_SECONDS} s — see {pgdata / 'log'}, or run `etl db stop` again")
        time.sleep(0.2)
    print(f"stopped the embedded PostgreSQL in {pgdata}; the next command starts it again")
    return 0


def _postmaster_pid(pgdata: Path) -> int | None:
    """The pid of the server running on `pgdata`, from its postmaster.pid; None when none runs."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


if __name__ == "__main__":
    sys.exit(main())
