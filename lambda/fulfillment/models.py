"""Declarative shapes the domain works with. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ResolvedCustomer:
    """What ResolveCustomer told us about the buyer; empty strings are normalised to None."""

    product_code: str
    customer_aws_account_id: str
    license_arn: str | None
    customer_identifier: str | None
    agreement_id: str | None

    @property
    def customer_key(self) -> str:
        """The customer's identity: the legacy identifier where Marketplace issued one,
        otherwise the license (new integrations; one account can hold several licenses)."""
        if self.customer_identifier:
            return f"LEGACY#{self.product_code}#{self.customer_identifier}"
        if self.license_arn:
            return f"LICENSE#{self.license_arn}"
        raise ValueError("customer has neither a CustomerIdentifier nor a LicenseArn")


@dataclass(frozen=True, slots=True)
class Submission:
    """What the buyer's browser brought: only the token and whether it was a free-trial offer."""

    token: str
    free_trial: bool


@dataclass(frozen=True, slots=True)
class RegistrationOutcome:
    """The result of one registration, replayed as-is to resubmissions of the same token."""

    session_id: str
    session_expires_at: int
    customer_key: str
    customer_ref: str
    product_code: str
    new_customer: bool
    registered_by_request: str


@dataclass(frozen=True, slots=True)
class SignupSession:
    """A hand-off from registration to sign-up, as stored (the id travels in the URL)."""

    session_id: str
    customer_key: str
    product_code: str
    expires_at: int
    csrf_token: str
    completed: bool


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """A customer as the seller's systems see it: Marketplace identity and status, no contact."""

    customer_key: str
    product_code: str
    customer_aws_account_id: str
    license_arn: str | None
    customer_identifier: str | None
    agreement_id: str | None
    status: str | None
    signed_up_at: str | None


@dataclass(frozen=True, slots=True)
class ContactDetails:
    """What the buyer typed into the sign-up form, validated; personal data."""

    company: str
    contact_name: str
    email: str
    phone: str | None
    extra: tuple[tuple[str, str], ...] = ()
