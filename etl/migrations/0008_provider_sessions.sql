-- A provider's session credentials, kept so later runs and other workers reuse
-- them instead of asking again: Yahoo's cookie (from YAHOO_COOKIE_URL) and the
-- crumb that goes with it (from /v1/test/getcrumb), until Yahoo refuses them.
-- They are secrets of a kind: redacted from every log line and error message.

CREATE TABLE provider_sessions (
    provider    text        PRIMARY KEY,
    cookies     jsonb       NOT NULL CHECK (jsonb_typeof(cookies) = 'object'),  -- cookie name → value
    crumb       text        NOT NULL CHECK (crumb <> ''),
    obtained_at timestamptz NOT NULL DEFAULT now()
);
