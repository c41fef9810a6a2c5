"""Reading the token out of real-shaped API Gateway REST events."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from fulfillment.registration.errors import (
    MalformedTokenError,
    MissingTokenError,
    OversizedRequestError,
)
from fulfillment.registration.intake import MAX_TOKEN_BYTES, read_submission
from tests.events import TOKEN_FIELD, form_post, rest_event

# Real tokens are base64-like and carry + / =, which form encoding turns into %2B %2F %3D.
TOKEN = "AbC+dEf/GhI+jKl/MnO=="


def test_plain_form_post_keeps_plus_slash_and_equals() -> None:
    submission = read_submission(form_post(TOKEN))

    assert submission is not None
    assert submission.token == TOKEN
    assert submission.free_trial is False


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded; charset=UTF-8",
        "Application/X-WWW-Form-Urlencoded;charset=utf-8",
        'application/x-www-form-urlencoded; charset="ISO-8859-1"',
        "application/x-www-form-urlencoded; charset=no-such-charset",
    ],
)
def test_charset_suffix_is_accepted(content_type: str) -> None:
    submission = read_submission(form_post(TOKEN, content_type=content_type))

    assert submission is not None
    assert submission.token == TOKEN


def test_base64_encoded_body_is_decoded() -> None:
    submission = read_submission(form_post(TOKEN, base64_body=True))

    assert submission is not None
    assert submission.token == TOKEN


def test_invalid_base64_body_is_malformed() -> None:
    event = rest_event(body="not base64 at all!")
    event["isBase64Encoded"] = True

    with pytest.raises(MalformedTokenError):
        read_submission(event)


def test_unencoded_plus_in_a_form_body_means_space_so_the_token_is_malformed() -> None:
    # A browser encodes + as %2B; a raw + is a space in form encoding, never part of a token.
    event = rest_event(body=f"{TOKEN_FIELD}=AbC+dEf")

    with pytest.raises(MalformedTokenError):
        read_submission(event)


def test_token_in_query_string_on_get_and_post() -> None:
    for method in ("GET", "POST"):
        event = rest_event(
            method=method, body=None, content_type=None, query={TOKEN_FIELD: [TOKEN]}
        )
        submission = read_submission(event)
        assert submission is not None
        assert submission.token == TOKEN


def test_no_token_field_is_none() -> None:
    event = rest_event(body="something=else")

    assert read_submission(event) is None


@pytest.mark.parametrize("blank", ["", "   ", "%20%20"])
def test_blank_token_is_missing(blank: str) -> None:
    with pytest.raises(MissingTokenError):
        read_submission(rest_event(body=f"{TOKEN_FIELD}={blank}"))


@pytest.mark.parametrize(
    "token",
    ["abc def", "abc\tdef", "abc\ndef", "abc\x00def", "t\u00f6ken", "x" * (MAX_TOKEN_BYTES + 1)],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(MalformedTokenError):
        read_submission(rest_event(body=f"{TOKEN_FIELD}={quote(token)}"))


def test_token_of_exactly_the_maximum_size_is_accepted() -> None:
    token = "A" * MAX_TOKEN_BYTES

    submission = read_submission(form_post(token))

    assert submission is not None
    assert submission.token == token


def test_repeated_field_with_the_same_value_is_accepted() -> None:
    body = f"{TOKEN_FIELD}={quote(TOKEN, safe='')}&{TOKEN_FIELD}={quote(TOKEN, safe='')}"

    submission = read_submission(rest_event(body=body))

    assert submission is not None
    assert submission.token == TOKEN


def test_repeated_field_with_different_values_is_malformed() -> None:
    with pytest.raises(MalformedTokenError):
        read_submission(rest_event(body=f"{TOKEN_FIELD}=one&{TOKEN_FIELD}=two"))


def test_body_and_query_disagreeing_is_malformed() -> None:
    event = form_post("one", query={TOKEN_FIELD: ["two"]})

    with pytest.raises(MalformedTokenError):
        read_submission(event)


def test_free_trial_offer_type_is_read() -> None:
    submission = read_submission(form_post(TOKEN, free_trial=True))

    assert submission is not None
    assert submission.free_trial is True


def test_other_fields_are_ignored() -> None:
    body = f"{TOKEN_FIELD}={quote(TOKEN, safe='')}&status=subscribed&customer=evil"

    submission = read_submission(rest_event(body=body))

    assert submission is not None
    assert (submission.token, submission.free_trial) == (TOKEN, False)


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_body_of_another_content_type_is_not_read(content_type: str | None) -> None:
    event = rest_event(body=f"{TOKEN_FIELD}=abc", content_type=content_type)

    assert read_submission(event) is None


def test_huge_body_is_refused_before_parsing() -> None:
    with pytest.raises(OversizedRequestError):
        read_submission(rest_event(body="a=" + "b" * 1_000_000))


def test_non_ascii_body_is_malformed() -> None:
    with pytest.raises(MalformedTokenError):
        read_submission(rest_event(body=f"{TOKEN_FIELD}=t\u00f6ken".encode()))


def test_too_many_fields_is_malformed() -> None:
    body = "&".join(f"f{i}=v" for i in range(100)) + f"&{TOKEN_FIELD}=abc"

    with pytest.raises(MalformedTokenError):
        read_submission(rest_event(body=body))


@pytest.mark.parametrize(
    "body",
    [
        f"{TOKEN_FIELD}=AbC%zzdEf",
        f"{TOKEN_FIELD}=AbC%2",
        f"{TOKEN_FIELD}=AbC%",
        f"{TOKEN_FIELD}=AbC%2BdEf&note=%G1",
        f"{TOKEN_FIELD}%zz=AbC",
    ],
)
def test_an_invalid_percent_escape_anywhere_in_the_body_is_malformed(body: str) -> None:
    # parse_qs would keep "%zz" in the token and Marketplace would be asked about it
    with pytest.raises(MalformedTokenError):
        read_submission(rest_event(body=body))


def test_valid_percent_escapes_in_either_case_are_read() -> None:
    submission = read_submission(rest_event(body=f"{TOKEN_FIELD}=AbC%2bdEf%2FGhI%3d"))

    assert submission is not None
    assert submission.token == "AbC+dEf/GhI="
