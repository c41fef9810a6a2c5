"""How a buyer-facing surface reports an error: the log line and metrics of its table's entries.

Each surface declares one table from error class to everything its answer needs
(registration/pages.py, signup/pages.py, handoff/handler.py). Its handler looks the error up
once (``lookup``: along the class hierarchy, most specific first) and acts on the entry; the
entry's ``Log`` and ``Count`` say what is written and counted. What a log line or a metric
dimension may take from an error is the closed list in ``Detail``: bounded codes and names,
never a token, an id or contact details.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import NamedTuple, TypeVar

from fulfillment.contract import MetricName
from fulfillment.core.observability import count_by, logger

Entry = TypeVar("Entry")


class Detail(Enum):
    """A safe attribute of an error, by the log key it is written under."""

    REASON = "reason"  # RejectedSubmissionError.reason
    ERROR_CODE = "error_code"  # MarketplaceError.code
    VARIABLE = "variable"  # ConfigurationError.variable
    ERROR = "error"  # str(error) of a StorageUnavailableError: the AWS error code

    def of(self, error: BaseException) -> str:
        if self is Detail.ERROR:
            return str(error)
        return str(getattr(error, _ATTRIBUTES[self]))


_ATTRIBUTES = {Detail.REASON: "reason", Detail.ERROR_CODE: "code", Detail.VARIABLE: "variable"}


class Count(NamedTuple):
    """One metric with one bounded dimension, its value fixed or a Detail of the error."""

    metric: MetricName
    dimension: str
    value: str | Detail


class Log(NamedTuple):
    """One log line. ``message`` may name ``{error}`` (str(error)) or ``{type}`` (its class);
    ``fixed`` keys come first, then each Detail; ``traceback`` logs the exception with it."""

    level: int
    message: str
    fixed: tuple[tuple[str, str], ...] = ()
    details: tuple[Detail, ...] = ()
    traceback: bool = False


_WRITERS = {
    logging.DEBUG: logger.debug,
    logging.INFO: logger.info,
    logging.WARNING: logger.warning,
    logging.ERROR: logger.error,
}


def lookup(error: BaseException, table: Mapping[type[Exception], Entry], default: Entry) -> Entry:
    """The entry ``table`` gives ``error``'s class or its nearest base; else ``default``."""
    for cls in type(error).__mro__:
        entry = table.get(cls)
        if entry is not None:
            return entry
    return default


def report(
    error: BaseException,
    log: Log,
    counts: Iterable[Count] = (),
    context: Mapping[str, object] | None = None,
    *,
    stacklevel: int = 1,
) -> None:
    """Count ``error`` and write its log line (``context`` keys first) as its entry says.

    The line's location is the caller's, or ``stacklevel`` frames further up."""
    for count in counts:
        value = count.value.of(error) if isinstance(count.value, Detail) else count.value
        count_by(count.metric, count.dimension, value)
    extra = {**(context or {}), **dict(log.fixed)}
    extra.update((detail.value, detail.of(error)) for detail in log.details)
    message = log.message.format(error=error, type=type(error).__name__)
    # Logger's own frame, this function's, then the caller's.
    if log.traceback:
        logger.exception(message, extra=extra, stacklevel=2 + stacklevel)
    else:
        _WRITERS[log.level](message, extra=extra, stacklevel=2 + stacklevel)
