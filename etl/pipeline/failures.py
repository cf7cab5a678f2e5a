"""One asset's failure as the chain reports it: the error that decides what happens next, and how loudly."""

from __future__ import annotations

import logging

from etl.errors import (DeferredError, EtlError, NotFoundError, ProviderUnavailableError, QuotaExhaustedError,
                        RetryableError)
from etl.models import Asset


def asset_failure_level(error: EtlError) -> int:
    """How loudly to log one asset's failure: a provider that is down for the run was already said
    once (`mark_unavailable`), so each asset it costs is DEBUG; anything else is a WARNING."""
    return logging.DEBUG if isinstance(error, ProviderUnavailableError) else logging.WARNING


def no_provider_error(asset: Asset) -> EtlError:
    """That asset alone fails: nothing in its chain (or --provider) covers its type."""
    return EtlError(f"{asset.spec}: no provider in the chain covers {asset.asset_type} — add one to the "
                    "*_PROVIDERS setting of its type or pass --provider with one that does")


def combined_error(asset: Asset, errors: list[EtlError]) -> EtlError:
    """One error for an asset no provider could serve, of the kind that decides what happens next."""
    if not errors:
        return RetryableError(f"{asset.spec}: no provider answered")
    message = "; ".join(str(e) for e in errors)
    if any(isinstance(e, QuotaExhaustedError) for e in errors):
        return DeferredError(f"{asset.spec}: deferred — daily quota spent ({message}); it is fetched on the next run")
    if all(isinstance(e, NotFoundError) for e in errors):
        return NotFoundError(message)
    if len(errors) == 1:
        return errors[0]
    if all(isinstance(e, ProviderUnavailableError) for e in errors):
        return ProviderUnavailableError(message)
    return RetryableError(message)
