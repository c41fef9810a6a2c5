"""Real-shaped lifecycle queue bodies (tests/fixtures/lifecycle) and SQS events wrapping them."""

from __future__ import annotations

import copy
import json
import uuid
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures" / "lifecycle"
PRODUCT = "prod-integration1"
ACCOUNT = "111122223333"
AGREEMENT = "agmt-1a2b3c4d5e6f7g8h9i0j1k2l3"
LICENSE_ARN = "arn:aws:license-manager::111122223333:license:l-0123456789abcdef0123456789abcdef"
LICENSE_PK = "LICENSE#l-0123456789abcdef0123456789abcdef"  # the license id keys the customer
LEGACY_ID = "Ab1Cd2Ef3Gh"
LEGACY_PK = f"LEGACY#{PRODUCT}#{LEGACY_ID}"


@cache
def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


def eventbridge_names() -> list[str]:
    return list(_load("eventbridge_events.json"))


def sns_names() -> list[str]:
    return list(_load("sns_messages.json"))


def event(name: str, **changes: Any) -> dict[str, Any]:
    """An EventBridge event by fixture name (e.g. ``license_updated_manufacturer``), a copy;
    top-level keys in ``changes`` replace the fixture's."""
    return {**copy.deepcopy(_load("eventbridge_events.json")[name]), **changes}


def agreement_event(name: str, agreement_id: str, time: str, **agreement: Any) -> dict[str, Any]:
    """An agreement event by fixture name for another agreement (and time); ``agreement``
    updates its ``detail.agreement`` (e.g. ``intent``, ``previousAgreementId``, ``status``)."""
    payload = event(name, time=time)
    payload["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/{agreement_id}/{time}"))
    payload["resources"] = [f"arn:aws:aws-marketplace::aws:agreement:{agreement_id}"]
    payload["detail"]["agreement"].update(id=agreement_id, **agreement)
    return payload


def renewal(role: str, agreement_id: str, previous: str, time: str) -> dict[str, Any]:
    """`Purchase Agreement Created - <role>` of a renewal: intent RENEW, previousAgreementId."""
    return agreement_event(
        f"agreement_created_{role}",
        agreement_id,
        time,
        intent="RENEW",
        previousAgreementId=previous,
    )


def sns_envelope(
    name: str, *, message: dict[str, Any] | None = None, **changes: Any
) -> dict[str, Any]:
    """An SNS envelope by fixture name (e.g. ``subscribe_success``); ``message`` updates the
    inner Marketplace message, other ``changes`` the envelope."""
    envelope = copy.deepcopy(_load("sns_messages.json")[name])
    if message is not None:
        envelope["Message"] = json.dumps({**json.loads(envelope["Message"]), **message})
    return {**envelope, **changes}


# AWS's own examples (aws_examples.json): keys starting with "_" (the source address, notes)
# are the fixture's, not AWS's, and never reach a body.
AWS_PRODUCT = "n0123EXAMPLEXXXXXXXXXXXX"
MARKETPLACE_TOPICS = "arn:aws:sns:us-east-1:287250355862:"


def aws_sns_examples() -> list[tuple[str, str]]:
    """(example, action) for every action of every SNS example AWS prints."""
    return [
        (name, action)
        for name, example in _load("aws_examples.json").items()
        for action in example["actions"]
    ]


def aws_sns_envelope(name: str, action: str) -> dict[str, Any]:
    """AWS's example message for ``action``, as the stack delivers it: in the SNS envelope
    (raw message delivery off) of the product's Marketplace topic."""
    example = _load("aws_examples.json")[name]
    message = {k: v for k, v in example["message"].items() if not k.startswith("_")}
    message["action"] = message["action"].replace("<action-name>", action)
    envelope = sns_envelope("subscribe_success")
    envelope["MessageId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/{action}"))
    topic = f"{MARKETPLACE_TOPICS}{example['topic']}{message['product-code']}"
    envelope["TopicArn"] = topic
    envelope["UnsubscribeURL"] = (
        "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn="
        f"{topic}:c7fe3a54-ab0e-4ec2-88e0-db410a0f2bee"
    )
    envelope["Message"] = json.dumps(message)
    return envelope


# AWS's EventBridge examples (aws_eventbridge_examples.json): their product and license.
AWS_EVENT_PRODUCT = "aw4fgf5tyo5w2ap6fEXAMPLE"
AWS_EVENT_LICENSE_PK = "LICENSE#l-e52ca6f38bf84d0fafb8802ca15ac11x"


def aws_eventbridge_names() -> list[str]:
    return sorted(_load("aws_eventbridge_examples.json"))


def aws_eventbridge_event(name: str, **changes: Any) -> dict[str, Any]:
    """AWS's example event, as an EventBridge rule with an SQS target delivers it (the event
    JSON is the body); ``changes`` update its envelope (e.g. an earlier ``time``)."""
    example = _load("aws_eventbridge_examples.json")[name]
    return {**{k: v for k, v in example.items() if not k.startswith("_")}, **changes}


def body(payload: dict[str, Any] | str) -> str:
    return payload if isinstance(payload, str) else json.dumps(payload)


def sqs_event(*payloads: dict[str, Any] | str) -> dict[str, Any]:
    """A Lambda SQS event with one record per body (fresh message ids)."""
    (template,) = _load("sqs_lifecycle.json")["Records"]
    records = []
    for payload in payloads:
        record = copy.deepcopy(template)
        record["messageId"] = str(uuid.uuid4())
        record["body"] = body(payload)
        records.append(record)
    return {"Records": records}
