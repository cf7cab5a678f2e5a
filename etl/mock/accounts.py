"""The mock job's accounts: new ids from the seed, refused when they exist, stored with their currency.

New account ids are the first draws of the run's seed, so a seed that already
ran on this database would add its rows to those old accounts. That is
checked before the run starts (`refuse_used_seed`: exit 2, no run row, no
event), and again inside the run's transaction against a concurrent run.
"""

from __future__ import annotations

import random
from uuid import UUID

from etl.config import Settings
from etl.errors import UsageError
from etl.mock.generator import new_account_ids
from etl.utils import db_utils

_TAKEN_IDS = "SELECT account_id FROM accounts WHERE account_id = ANY(%s::uuid[]) ORDER BY account_id"

# New accounts get the run's currency; an existing account keeps its own, or gets the run's if it had none.
_INSERT_ACCOUNTS = """
    INSERT INTO accounts (account_id, currency) SELECT unnest(%(ids)s::uuid[]), %(currency)s
    ON CONFLICT (account_id) DO UPDATE SET currency = %(currency)s WHERE accounts.currency IS NULL
"""


def seed_account_ids(seed: int, count: int) -> list[UUID]:
    """The ids of the `count` new accounts a run with `seed` creates (the seed's first draws)."""
    return new_account_ids(random.Random(seed), count)


def refuse_used_seed(settings: Settings, seed: int, count: int) -> None:
    """Exit 2 (UsageError) before anything is recorded when the seed's new accounts exist already."""
    if count <= 0:
        return
    with db_utils.database(settings) as conn:
        with conn.cursor() as cur:
            refuse_taken_ids(cur, seed_account_ids(seed, count), seed)
        conn.rollback()


def refuse_taken_ids(cur, fresh: list[UUID], seed: int) -> None:
    """Stop (exit 2) when the seed's new account ids exist already: its rows would land in old accounts."""
    cur.execute(_TAKEN_IDS, ([str(a) for a in fresh],))
    taken = [str(row[0]) for row in cur.fetchall()]
    if taken:
        raise UsageError(f"--seed {seed} has run on this database before: {len(taken)} of the {len(fresh)} "
                         "account ids it generates already exist — pass another --seed, or --account-id UUID "
                         "to add to existing accounts")


def store_accounts(cur, accounts: tuple[UUID, ...], currency: str) -> None:
    """Create the accounts that do not exist, in `currency`; give it to existing ones that have none."""
    cur.execute(_INSERT_ACCOUNTS, {"ids": [str(a) for a in accounts], "currency": currency})
