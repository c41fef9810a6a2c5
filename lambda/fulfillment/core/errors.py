"""The base of the project's own exceptions, and the few every capability shares.

Each capability declares its own errors beside its code; each surface maps them to an answer
in one table (registration/pages.py, signup/pages.py, handoff/handler.py).
"""

from __future__ import annotations


class FulfillmentError(Exception):
    """Base of every error this function answers with a page of its own."""


class ConfigurationError(FulfillmentError):
    """An environment variable is missing or invalid: an operator's fault, not the buyer's."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable} {problem}")
        self.variable = variable
        self.problem = problem


class DeadlineExceededError(FulfillmentError):
    """The invocation has no time left for another AWS call; the buyer may try again."""


class StorageUnavailableError(FulfillmentError):
    """DynamoDB refused or timed out after retries; nothing was registered, try again."""


class UnreadableFormError(FulfillmentError):
    """A form body that is not well-formed application/x-www-form-urlencoded."""


class OversizedFormError(UnreadableFormError):
    """A form body far larger than any form of ours."""
