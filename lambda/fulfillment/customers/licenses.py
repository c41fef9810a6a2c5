"""License Manager license ARNs: one license, whichever way Marketplace spells it. No I/O.

Marketplace spells one license three ways: ResolveCustomer and captured events
``arn:aws:license-manager::<account>:license:l-<id>``, AWS's EventBridge examples
``arn:aws:license-manager:<region>:<account>:l-<id>``, and its agreement examples
``arn:aws:license-manager::<account>:license/l-<id>``. The license's own id (``l-...``) is
what they share, so it keys the customer (docs/lifecycle.md, "The customer key").
"""

from __future__ import annotations

import re
from typing import NamedTuple

_LICENSE_ARN = re.compile(
    r"arn:(?P<partition>aws(?:-[a-z]+)*):license-manager:(?P<region>[a-z0-9-]*):"
    r"(?P<account>\d{12}):(?:license[:/])?(?P<license_id>l-[0-9A-Za-z]{1,64})"
)


class InvalidLicenseArnError(ValueError):
    """Text that is not the ARN of a License Manager license."""


class LicenseArn(NamedTuple):
    arn: str  # as received
    partition: str
    account: str
    license_id: str

    @property
    def resolve_customer_spelling(self) -> str:
        """The spelling ResolveCustomer answers with (and captured events use)."""
        return f"arn:{self.partition}:license-manager::{self.account}:license:{self.license_id}"

    @property
    def spellings(self) -> tuple[str, ...]:
        """The spellings an item written before license ids keyed customers may carry in its
        ``license_arn``: this one, then ResolveCustomer's, which every registered item has."""
        return tuple(dict.fromkeys((self.arn, self.resolve_customer_spelling)))


def parse_license_arn(text: str) -> LicenseArn:
    """Parse any of the spellings above; raise InvalidLicenseArnError for anything else (the
    ARN of another service or resource, a bare id, an empty or padded string)."""
    match = _LICENSE_ARN.fullmatch(text)
    if match is None:
        raise InvalidLicenseArnError("not the ARN of a License Manager license")
    return LicenseArn(text, match["partition"], match["account"], match["license_id"])
