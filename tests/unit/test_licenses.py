"""One license, every spelling of its ARN: the customer key is the license's own id."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulfillment.customers.licenses import InvalidLicenseArnError, parse_license_arn
from fulfillment.customers.models import license_key

LICENSE_ID = "l-0123456789abcdef0123456789abcdef"
# ResolveCustomer and captured events; AWS's EventBridge examples; AWS's agreement examples.
SPELLINGS = [
    f"arn:aws:license-manager::111122223333:license:{LICENSE_ID}",
    f"arn:aws:license-manager:us-east-1:111122223333:{LICENSE_ID}",
    f"arn:aws:license-manager::111122223333:license/{LICENSE_ID}",
]


@pytest.mark.parametrize("arn", SPELLINGS)
def test_every_spelling_names_the_license_and_keys_one_customer(arn: str) -> None:
    license = parse_license_arn(arn)

    assert (license.license_id, license.account, license.arn) == (LICENSE_ID, "111122223333", arn)
    assert license_key(arn) == f"LICENSE#{LICENSE_ID}"
    # and the spelling every registered item carried before ids keyed customers is known
    assert license.resolve_customer_spelling == SPELLINGS[0]
    assert license.spellings == tuple(dict.fromkeys((arn, SPELLINGS[0])))


@pytest.mark.parametrize(
    "text",
    [
        "",
        LICENSE_ID,  # a bare id
        "arn:aws:iam::111122223333:role/license",  # another service
        "arn:aws:license-manager::111122223333:grant:g-0123456789abcdef",  # another resource
        "arn:aws:license-manager:us-east-1:111122223333:license-configuration:lic-0123",
        "arn:aws:license-manager::111122223333:license:",  # no id
        "arn:aws:license-manager::12345:license:" + LICENSE_ID,  # not an account id
        f" {SPELLINGS[0]}",  # padded
        f"{SPELLINGS[0]}\n",
        f"{SPELLINGS[0]}/extra",
        "LICENSE#" + LICENSE_ID,
    ],
)
def test_what_is_no_license_arn_is_refused(text: str) -> None:
    with pytest.raises(InvalidLicenseArnError):
        parse_license_arn(text)
    with pytest.raises(InvalidLicenseArnError):
        license_key(text)


@given(
    partition=st.sampled_from(["aws", "aws-cn", "aws-us-gov"]),
    region=st.sampled_from(["us-east-1", "eu-west-2", "cn-north-1"]),
    account=st.from_regex(r"\d{12}", fullmatch=True),
    license_id=st.from_regex(r"l-[0-9a-zA-Z]{1,64}", fullmatch=True),
)
def test_the_three_spellings_of_any_license_share_one_key(
    partition: str, region: str, account: str, license_id: str
) -> None:
    spellings = [
        f"arn:{partition}:license-manager::{account}:license:{license_id}",
        f"arn:{partition}:license-manager:{region}:{account}:{license_id}",
        f"arn:{partition}:license-manager::{account}:license/{license_id}",
    ]

    assert {license_key(arn) for arn in spellings} == {f"LICENSE#{license_id}"}
    assert {parse_license_arn(a).resolve_customer_spelling for a in spellings} == {spellings[0]}
