"""The error hierarchy every layer raises and the CLI edge turns into exit codes.

A message always says what failed and what to do about it; the CLI prints it as
one line. Exit codes follow DESIGN.md.
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_LOCKED = 75
EXIT_INTERRUPTED = 130   # SIGINT (Ctrl-C)
EXIT_TERMINATED = 143    # SIGTERM (docker stop, the worker's shutdown)

EXIT_CODE_MEANINGS = {
    EXIT_OK: "every asset done",
    EXIT_FAILED: "the job could not run (database unreachable, bad credentials …); nothing half-written",
    EXIT_USAGE: "bad arguments or configuration; one line says which",
    EXIT_PARTIAL: "partial: some assets failed, the rest were loaded; the failures are listed",
    EXIT_LOCKED: "other runs hold every asset (or the job's lock); nothing done",
    EXIT_INTERRUPTED: "interrupted by Ctrl-C (SIGINT): what was committed stays and is announced",
    EXIT_TERMINATED: "stopped by SIGTERM: what was committed stays and is announced",
}


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


class AccessRefusedError(RetryableError):
    """A keyless API refused this client or its session (401/403): renew the session or ask elsewhere."""


class QuotaExhaustedError(RetryableError):
    """The provider's daily allowance is spent: stop asking it until tomorrow."""


class BudgetSpentError(QuotaExhaustedError):
    """Today's counted budget is spent: no request was made (nothing to mark as spent)."""


class DeferredError(RetryableError):
    """Every provider that could serve the asset has spent its daily quota: try again tomorrow."""


class UnusableAnswerError(RetryableError):
    """An answer about one asset that could not be read (a wrong shape, a number out of range): that
    asset alone fails with it, or its next provider is asked; the rest of the run goes on."""


class ProviderUnavailableError(RetryableError):
    """The provider cannot serve this client for now: not asked again in this run, the next
    provider of each chain takes over."""


class ProviderUnreachableError(ProviderUnavailableError):
    """No connection could be made to the provider (DNS failure, refused) even after the retries."""


class NotFoundError(EtlError):
    """Unknown or delisted symbol: skip this asset, the others go on."""


class FatalError(EtlError):
    """Bad key or bad request: stop the job."""


class MissingKeyError(FatalError):
    """A provider needs an API key that is not set: a configuration problem, exit 2."""

    exit_code = EXIT_USAGE


class LockHeldError(EtlError):
    """Other runs of the job hold every asset this run was asked for: nothing was done."""

    exit_code = EXIT_LOCKED


class StoppedPartwayError(EtlError):
    """A run stopped by an error after it had committed some assets: those are loaded and announced."""

    exit_code = EXIT_PARTIAL


class Interrupted(BaseException):
    """A signal asked the run to stop; raised at the job's next safe point (never from a signal handler).

    A BaseException, so no per-asset error handling mistakes it for that asset's failure.
    """

    def __init__(self, exit_code: int):
        self.exit_code = exit_code
        super().__init__("interrupted by SIGINT (Ctrl-C)" if exit_code == EXIT_INTERRUPTED else "stopped by SIGTERM")


class PoisonMessage(EtlError):
    """A worker request no run of its job can satisfy: it goes to the dead-letter topic."""

    exit_code = EXIT_USAGE
