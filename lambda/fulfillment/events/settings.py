"""The registration events publisher's settings: the seller's bus and the retry queue."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import cache
from typing import NamedTuple

from fulfillment.contract import EVENT_BUS_NAME, PUBLISH_RETRY_QUEUE_URL
from fulfillment.core import settings as check
from fulfillment.core.errors import ConfigurationError

ENVIRONMENT_KEYS = frozenset({EVENT_BUS_NAME, PUBLISH_RETRY_QUEUE_URL})

# A bus name, or its ARN (PutEvents accepts both).
_EVENT_BUS = r"(arn:aws[a-z-]*:events:[a-z0-9-]+:\d{12}:event-bus/)?[/.\-_A-Za-z0-9]{1,256}"


class PublisherSettings(NamedTuple):
    event_bus_name: str
    publish_retry_queue_url: str


def load_publisher_settings(environ: Mapping[str, str]) -> PublisherSettings:
    """Validate the publisher's variables; raise ConfigurationError naming the first fault."""
    return PublisherSettings(
        event_bus_name=_event_bus(environ),
        publish_retry_queue_url=check.queue_url(environ, PUBLISH_RETRY_QUEUE_URL),
    )


@cache
def get_publisher_settings() -> PublisherSettings:
    return load_publisher_settings(os.environ)


def _event_bus(environ: Mapping[str, str]) -> str:
    value = check.required(environ, EVENT_BUS_NAME)
    if not re.fullmatch(_EVENT_BUS, value):
        raise ConfigurationError(EVENT_BUS_NAME, "is not an event bus name or ARN")
    return value
