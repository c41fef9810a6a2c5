"""cdk-nag acknowledgements, each with its reason, recorded so a test can prove it is needed."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Acknowledgment, Validations
from aws_cdk.aws_lambda import IFunction
from constructs import IConstruct


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    path: str
    rule_id: str
    reason: str


# cdk-nag 3 names a finding "<pack>::<rule>[<finding>]".
PACK = "AwsSolutions"
# Context key that turns acknowledgements off, for the test that proves each one is needed.
SKIP_CONTEXT_KEY = "nagSkipAcknowledgements"


def acknowledge(construct: IConstruct, rule_id: str, reason: str) -> Acknowledgement:
    """Acknowledge ``rule_id`` on ``construct`` unless the app's context turns that off."""
    record = Acknowledgement(construct.node.path, rule_id, reason)
    if str(construct.node.try_get_context(SKIP_CONTEXT_KEY)).lower() != "true":
        Validations.of(construct).acknowledge(
            Acknowledgment(id=f"{PACK}::{rule_id}", reason=reason)
        )
    return record


def default_policy(function: IFunction) -> IConstruct:
    """The function role's generated policy: where IAM5 findings on its grants land."""
    role = function.role
    if role is None or (policy := role.node.try_find_child("DefaultPolicy")) is None:
        raise ValueError(f"{function.node.path} has no role policy to acknowledge on")
    return policy


# The AwsSolutions-L1 acknowledgement of every function.
RUNTIME_REASON = (
    "python3.13 on purpose: the shipped bytecode is compiled for 3.13 (see "
    "docs/decisions.md); move to a newer runtime together with the bytecode compiler."
)
