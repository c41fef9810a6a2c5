"""The publisher's settings: EVENT_BUS_NAME and PUBLISH_RETRY_QUEUE_URL."""

from __future__ import annotations

import pytest

from fulfillment.core.errors import ConfigurationError
from fulfillment.events.settings import ENVIRONMENT_KEYS as PUBLISHER_ENVIRONMENT_KEYS
from fulfillment.events.settings import load_publisher_settings
from tests.functions import ENVIRONMENT_KEYS as FUNCTION_ENVIRONMENT_KEYS

VALID = {
    "EVENT_BUS_NAME": "Fulfillment-registrations",
    "PUBLISH_RETRY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/Retry-Queue_1",
}


def test_the_publisher_reads_exactly_its_two_variables() -> None:
    assert FUNCTION_ENVIRONMENT_KEYS["fulfillment.events.handler.lambda_handler"] == {
        "EVENT_BUS_NAME",
        "PUBLISH_RETRY_QUEUE_URL",
    }
    assert set(VALID) == PUBLISHER_ENVIRONMENT_KEYS


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EVENT_BUS_NAME", "arn:aws:events:us-east-1:123456789012:event-bus/Fulfillment-x"),
        ("PUBLISH_RETRY_QUEUE_URL", "http://127.0.0.1:5000/123456789012/retry"),
    ],
)
def test_accepted_values(name: str, value: str) -> None:
    settings = load_publisher_settings({**VALID, name: value})

    assert value in (settings.event_bus_name, settings.publish_retry_queue_url)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EVENT_BUS_NAME", ""),
        ("EVENT_BUS_NAME", "bus with spaces"),
        ("PUBLISH_RETRY_QUEUE_URL", ""),
        ("PUBLISH_RETRY_QUEUE_URL", "http://sqs.us-east-1.amazonaws.com/123456789012/retry"),
        ("PUBLISH_RETRY_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/retry"),
        ("PUBLISH_RETRY_QUEUE_URL", "retry"),
    ],
)
def test_a_missing_or_invalid_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_publisher_settings({**VALID, name: value})

    assert raised.value.variable == name
