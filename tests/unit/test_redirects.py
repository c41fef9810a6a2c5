from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from fulfillment.core.redirects import builtin_signup_path, registration_location


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://app.example.com/signup", "https://app.example.com/signup?registration=abc_-1"),
        ("https://app.example.com", "https://app.example.com/?registration=abc_-1"),
        (
            "https://app.example.com/signup?source=aws&lang=en",
            "https://app.example.com/signup?source=aws&lang=en&registration=abc_-1",
        ),
        (
            "https://app.example.com/signup?registration=stale",
            "https://app.example.com/signup?registration=abc_-1",
        ),
    ],
)
def test_registration_id_joins_the_configured_url(base: str, expected: str) -> None:
    assert registration_location(base, "abc_-1") == expected


def test_query_values_of_the_configured_url_survive_encoding() -> None:
    location = registration_location("https://x.example/s?next=%2Fhome%3Fa%3D1", "id1")

    assert parse_qs(urlsplit(location).query) == {"next": ["/home?a=1"], "registration": ["id1"]}


@pytest.mark.parametrize(
    ("context_path", "path", "expected"),
    [
        ("/prod/", "/", "/prod/signup"),
        ("/", "/", "/signup"),
        ("/aws/", "/", "/aws/signup"),
        (None, "/", "/signup"),
    ],
)
def test_builtin_signup_page_is_found_behind_stage_or_base_path(
    context_path: str | None, path: str, expected: str
) -> None:
    event = {"path": path, "requestContext": {"path": context_path}}

    assert builtin_signup_path(event) == expected
    assert registration_location(expected, "id1") == f"{expected}?registration=id1"


def test_a_deferred_registration_link_says_until_when_it_may_be_pending() -> None:
    location = registration_location("/prod/signup?deferred=1", "id1", deferred_until=1_900_000_000)

    assert location == "/prod/signup?registration=id1&deferred=1900000000"
    # A seller's own parameter of that name is theirs when nothing is deferred
    assert registration_location("https://x.example/?deferred=a", "id1").endswith(
        "?deferred=a&registration=id1"
    )
