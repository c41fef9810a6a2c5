"""botocore's standard retries without the sleeps between attempts.

Tests that make a client retry against a failing stand-in would otherwise wait botocore's
real backoff (up to 1 s, then 2 s, for a throttle). ``without_backoff`` keeps everything
the retries decide (how many attempts, which errors are retried, the retry quota) and only
makes the pause between attempts zero, so the attempt counts the docs promise are still
what the tests observe.
"""

from __future__ import annotations

from typing import Any, TypeVar

from botocore.retries import standard

Client = TypeVar("Client")


def without_backoff(client: Client) -> Client:
    """``client`` (in standard retry mode), retrying at once instead of after a backoff."""
    meta: Any = client.meta  # type: ignore[attr-defined]
    assert meta.config.retries.get("mode") == "standard", meta.config.retries
    service = meta.service_model.service_id.hyphenize()
    event, unique_id = f"needs-retry.{service}", f"retry-config-{service}"
    # botocore registered its handler under this id when it built the client; build the same
    # one again (same attempts), and put it back behind a wrapper that zeroes the delay.
    meta.events.unregister(event, unique_id=unique_id)
    retries = standard.register_retry_handler(
        client, max_attempts=meta.config.retries.get("total_max_attempts")
    )
    meta.events.unregister(event, unique_id=unique_id)

    def needs_retry(**kwargs: Any) -> Any:
        delay = retries.needs_retry(**kwargs)
        # None (or False): no retry. A number: retry, after that many seconds; here at once.
        return delay if delay is None or delay is False else 0

    meta.events.register(event, needs_retry, unique_id=unique_id)
    return client
