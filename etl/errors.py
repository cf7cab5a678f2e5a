"""The error hierarchy every layer raises and the CLI edge turns into exit codes.

A message always says what failed and what to do about it; the CLI prints it as
one line. Exit codes follow DESIGN.md.
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_LOCKED = 75


class EtlError(Exception):
    """Base for failures the user should read."""

    exit_code = EXIT_FAILED


class ConfigError(EtlError):
    """A setting or argument that cannot be used: exit 2."""

    exit_code = EXIT_USAGE


class UsageError(ConfigError):
    """A bad command-line argument: exit 2."""


class RetryableError(EtlError):
    """429, 5xx, timeouts, unreadable bodies: try again later or elsewhere."""


class RateLimitedError(RetryableError):
    """The provider said to slow down, and retrying within the budget did not help."""


class QuotaExhaustedError(RetryableError):
    """The provider's daily allowance is spent: stop asking it until tomorrow."""


class BudgetSpentError(QuotaExhaustedError):
    """Today's counted budget is spent: no request was made (nothing to mark as spent)."""


class DeferredError(RetryableError):
    """Every provider that could serve the asset has spent its daily quota: try again tomorrow."""


class NotFoundError(EtlError):
    """Unknown or delisted symbol: skip this asset, the others go on."""


class FatalError(EtlError):
    """Bad key or bad request: stop the job."""


class MissingKeyError(FatalError):
    """A provider needs an API key that is not set: a configuration problem, exit 2."""

    exit_code = EXIT_USAGE


class LockHeldError(EtlError):
    """Another run of the same job holds its lock: nothing was done."""

    exit_code = EXIT_LOCKED
