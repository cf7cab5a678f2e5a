"""Provider sessions kept in the database (`provider_sessions`): Yahoo's cookie and crumb.

Getting a Yahoo session costs two requests and Yahoo's edge is quick to refuse
clients that ask too often, so a session obtained by one run is kept for every
later run and every worker sharing the database, until Yahoo refuses it. Each
operation opens its own short autocommit connection (they are rare: a load per
run, a save per renewal), so no connection outlives the chain that uses it. A
dry run reads the stored session but writes nothing.
"""

from __future__ import annotations

import logging

from psycopg2.extras import Json

from etl.config import Settings
from etl.utils.db_utils import connect

log = logging.getLogger(__name__)

LOAD = "SELECT cookies, crumb FROM provider_sessions WHERE provider = %(provider)s"
SAVE = """
    INSERT INTO provider_sessions AS s (provider, cookies, crumb) VALUES (%(provider)s, %(cookies)s, %(crumb)s)
    ON CONFLICT (provider) DO UPDATE SET cookies = EXCLUDED.cookies, crumb = EXCLUDED.crumb, obtained_at = now()"""


class SavedSessions:
    """Load and save a provider's session (cookies, crumb) in `provider_sessions`."""

    def __init__(self, settings: Settings, *, read_only: bool = False):
        self.settings = settings
        self.read_only = read_only

    def load(self, provider: str) -> tuple[dict[str, str], str] | None:
        conn = connect(self.settings, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(LOAD, {"provider": provider})
                row = cur.fetchone()
        finally:
            conn.close()
        return (dict(row[0]), row[1]) if row else None

    def save(self, provider: str, cookies: dict[str, str], crumb: str) -> None:
        if self.read_only:
            return
        conn = connect(self.settings, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(SAVE, {"provider": provider, "cookies": Json(cookies), "crumb": crumb})
        finally:
            conn.close()
        log.debug("%s: session saved for later runs", provider)
