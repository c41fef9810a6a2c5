"""The shapes of what the customers table holds, shared by every capability. No I/O here."""

from __future__ import annotations

import json
from typing import NamedTuple

from fulfillment.contract import MarketplaceErrorCode
from fulfillment.customers.licenses import InvalidLicenseArnError, parse_license_arn

LICENSE_KEY_PREFIX = "LICENSE#"


def license_key(license_arn: str) -> str:
    """The key of every customer with a license, new and legacy products alike: the license's
    own id, so every spelling of its ARN names one item. Raises InvalidLicenseArnError."""
    return f"{LICENSE_KEY_PREFIX}{parse_license_arn(license_arn).license_id}"


def legacy_key(product_code: str, customer_identifier: str) -> str:
    """The key of a legacy customer without a license, and of the item an SNS notification
    (identifier only) writes before a legacy buyer registers."""
    return f"LEGACY#{product_code}#{customer_identifier}"


class ResolvedCustomer(NamedTuple):
    """What ResolveCustomer told us about the buyer; empty strings are normalised to None."""

    product_code: str
    customer_aws_account_id: str
    license_arn: str | None
    customer_identifier: str | None
    agreement_id: str | None
    # The key of the item this customer was registered under before license ids keyed
    # customers (``arn_key``): it stays the customer's (docs/lifecycle.md). Set by the store.
    stored_key: str | None = None

    @property
    def customer_key(self) -> str:
        """The customer's identity: the license wherever Marketplace granted one (one account
        can hold several), so the license events that may come first name the same item; the
        legacy identifier only for an answer without a license (docs/lifecycle.md)."""
        if self.stored_key:
            return self.stored_key
        if self.license_arn:
            return license_key(self.license_arn)
        if self.customer_identifier:
            return legacy_key(self.product_code, self.customer_identifier)
        raise ValueError("customer has neither a CustomerIdentifier nor a LicenseArn")

    @property
    def arn_key(self) -> str | None:
        """For an answer with a license: the key the customer was written under before license
        ids keyed customers (its ARN as ResolveCustomer spells it, and always did)."""
        return f"{LICENSE_KEY_PREFIX}{self.license_arn}" if self.license_arn else None

    @property
    def early_legacy_key(self) -> str | None:
        """For a legacy product's buyer with a license only: the key an SNS notification
        (identifier only) wrote before the buyer registered, which registration folds into
        ``customer_key`` (docs/lifecycle.md). None for every other answer: nothing to fold."""
        if self.license_arn and self.customer_identifier:
            return legacy_key(self.product_code, self.customer_identifier)
        return None


class SignupSession(NamedTuple):
    """A hand-off from registration to sign-up, as stored (the id travels in the URL)."""

    session_id: str
    customer_key: str
    product_code: str
    expires_at: int
    csrf_token: str
    completed: bool


class CustomerRecord(NamedTuple):
    """A customer as the seller's systems see it: Marketplace identity and status, no contact."""

    customer_key: str
    product_code: str
    customer_aws_account_id: str
    license_arn: str | None
    customer_identifier: str | None
    agreement_id: str | None
    status: str | None
    signed_up_at: str | None
    # The agreement's offer, and whether it has a free-trial term (None: not known yet).
    offer_id: str | None = None
    free_trial: bool | None = None


class ContactDetails(NamedTuple):
    """What the buyer typed into the sign-up form, validated; personal data."""

    company: str
    contact_name: str
    email: str
    phone: str | None
    extra: tuple[tuple[str, str], ...] = ()


# The recovery queue's message format; bump on any incompatible change. Version 2 added the
# idempotency record's key and outcome; version 1 messages (without them) still replay.
PARKED_MESSAGE_VERSION = 2
_READABLE_VERSIONS = frozenset({1, PARKED_MESSAGE_VERSION})
_V1_FIELDS = frozenset(
    {
        "registration_id",
        "product_code",
        "customer_aws_account_id",
        "csrf_token",
        "license_arn",
        "customer_identifier",
        "agreement_id",
        "session_expires_at",
        "registered_at",
        "request_id",
    }
)
_V2_FIELDS = _V1_FIELDS | {"idempotency_key", "outcome"}


class MalformedParkedRegistrationError(ValueError):
    """A recovery queue message is not a registration this function parked."""


class UnstorableParkedRegistrationError(MalformedParkedRegistrationError):
    """A parked registration that no replay can ever store, parked before the fulfillment URL
    checked these: ResolveCustomer answered no account id (the customer item's indexed
    attribute cannot hold an empty string), or a license ARN that is not a license's (no
    customer key can be made of it). ``code`` is the fulfillment URL's own refusal of it."""

    def __init__(self, problem: str, code: MarketplaceErrorCode) -> None:
        super().__init__(problem)
        self.code = code


class ParkedRegistration(NamedTuple):
    """A resolved registration whose writes failed, kept on the recovery queue for replay.

    Everything needed to write the session and the customer exactly as registration would
    have: the identity ResolveCustomer returned, never the token. ``idempotency_key`` and
    ``outcome`` name the token's idempotency record (its key is a SHA-256 hash, as the
    idempotency table stores it) and the answer it must replay: the replay completes that
    record, which the fulfillment function may not have managed to save.
    """

    registration_id: str
    product_code: str
    customer_aws_account_id: str
    license_arn: str | None
    customer_identifier: str | None
    agreement_id: str | None
    session_expires_at: int
    csrf_token: str
    registered_at: str
    request_id: str
    idempotency_key: str | None = None
    outcome: str | None = None

    @property
    def customer(self) -> ResolvedCustomer:
        return ResolvedCustomer(
            product_code=self.product_code,
            customer_aws_account_id=self.customer_aws_account_id,
            license_arn=self.license_arn,
            customer_identifier=self.customer_identifier,
            agreement_id=self.agreement_id,
        )

    def to_message(self) -> str:
        return json.dumps({"version": PARKED_MESSAGE_VERSION, **self._asdict()}, sort_keys=True)

    @classmethod
    def from_message(cls, body: str) -> ParkedRegistration:
        """Parse a recovery queue message; raise MalformedParkedRegistrationError otherwise."""
        try:
            message = json.loads(body)
        except ValueError:
            raise MalformedParkedRegistrationError("not JSON") from None
        if not isinstance(message, dict):
            raise MalformedParkedRegistrationError("unknown message version")
        version = message.pop("version", None)
        if version not in _READABLE_VERSIONS or isinstance(version, bool):
            raise MalformedParkedRegistrationError("unknown message version")
        if set(message) != (_V1_FIELDS if version == 1 else _V2_FIELDS):
            raise MalformedParkedRegistrationError("unexpected fields")
        if message["customer_aws_account_id"] == "":
            raise UnstorableParkedRegistrationError(
                "customer_aws_account_id is empty", MarketplaceErrorCode.MISSING_ACCOUNT_ID
            )
        if isinstance(message["license_arn"], str) and message["license_arn"]:
            try:
                parse_license_arn(message["license_arn"])
            except InvalidLicenseArnError:
                raise UnstorableParkedRegistrationError(
                    "license_arn is not a license", MarketplaceErrorCode.INVALID_LICENSE_ARN
                ) from None
        text = ("registration_id", "product_code", "customer_aws_account_id", "csrf_token")
        optional = (
            "license_arn",
            "customer_identifier",
            "agreement_id",
            "idempotency_key",
            "outcome",
        )
        if not all(isinstance(message[name], str) and message[name] for name in text):
            raise MalformedParkedRegistrationError("a required field is empty")
        if not all(isinstance(message.get(name), str | None) for name in optional):
            raise MalformedParkedRegistrationError("an optional field is not text")
        expires_at = message["session_expires_at"]
        if not isinstance(expires_at, int) or isinstance(expires_at, bool):
            raise MalformedParkedRegistrationError("session_expires_at is not a number")
        if not isinstance(message["registered_at"], str) or not isinstance(
            message["request_id"], str
        ):
            raise MalformedParkedRegistrationError("registered_at or request_id is not text")
        parked = cls(**message)
        try:
            parked.customer.customer_key  # noqa: B018 - validates the identity
        except ValueError:
            raise MalformedParkedRegistrationError("no customer identity") from None
        return parked
