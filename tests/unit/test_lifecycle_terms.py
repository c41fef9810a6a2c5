"""The GetAgreementTerms adapter against botocore's Stubber (the real client, no network)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from fulfillment.lifecycle.subscriptions import AgreementTermsUnavailableError
from fulfillment.lifecycle.terms import MarketplaceAgreementTerms

AGREEMENT = "agmt-1a2b3c4d5e6f7g8h9i0j1k2l3"
LEGAL = {"legalTerm": {"id": "term-1", "type": "LegalTerm"}}
PRICING = {"usageBasedPricingTerm": {"id": "term-2", "type": "UsageBasedPricingTerm"}}
TRIAL = {
    "freeTrialPricingTerm": {
        "id": "term-3",
        "type": "FreeTrialPricingTerm",
        "duration": "P30D",
        "grants": [{"dimensionKey": "users", "maxQuantity": 10}],
    }
}


@pytest.fixture
def client() -> Any:
    return boto3.client("marketplace-agreement", region_name="us-east-1")


def _request(token: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"agreementId": AGREEMENT, "maxResults": 50}
    if token:
        request["nextToken"] = token
    return request


def _pages(stub: Stubber, *pages: list[dict[str, Any]], tokens: list[str] | None = None) -> None:
    tokens = tokens or [f"page-{n + 2}" for n in range(len(pages) - 1)]
    for number, terms in enumerate(pages):
        answer: dict[str, Any] = {"acceptedTerms": terms}
        if number < len(pages) - 1:
            answer["nextToken"] = tokens[number]
        stub.add_response(
            "get_agreement_terms", answer, _request(tokens[number - 1] if number else None)
        )


def test_a_free_trial_term_on_any_page_is_a_trial(client: Any) -> None:
    with Stubber(client) as stub:
        _pages(stub, [LEGAL], [], [PRICING, TRIAL])

        assert MarketplaceAgreementTerms(client).free_trial(AGREEMENT) is True
        stub.assert_no_pending_responses()


def test_terms_without_a_free_trial_term_are_no_trial(client: Any) -> None:
    with Stubber(client) as stub:
        _pages(stub, [LEGAL, PRICING])

        assert MarketplaceAgreementTerms(client).free_trial(AGREEMENT) is False


def test_a_next_token_given_twice_is_an_error_not_an_endless_loop(client: Any) -> None:
    with Stubber(client) as stub:
        _pages(stub, [LEGAL], [PRICING], [PRICING], [TRIAL], tokens=["a", "b", "a"])

        with pytest.raises(AgreementTermsUnavailableError) as caught:
            MarketplaceAgreementTerms(client).free_trial(AGREEMENT)

    assert caught.value.code == "RepeatedNextToken"


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        ("AccessDeniedException", 403, "AccessDenied"),
        ("ResourceNotFoundException", 404, "NotFound"),
        ("ValidationException", 400, "InvalidRequest"),
    ],
)
def test_a_permanent_refusal_is_no_answer_logged_and_counted(
    client: Any,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    code: str,
    status: int,
    reason: str,
) -> None:
    with Stubber(client) as stub:
        stub.add_client_error("get_agreement_terms", code, http_status_code=status)

        assert MarketplaceAgreementTerms(client).free_trial(AGREEMENT) is None

        stub.assert_no_pending_responses()  # one call, not retried
    output = capsys.readouterr().out.replace(" ", "")
    assert f'"Reason":"{reason}"' in output and '"AgreementTermsUnknown"' in output
    (line,) = [r for r in caplog.records if r.name == "fulfillment"]
    assert (line.levelname, getattr(line, "error_code", None)) == ("WARNING", code)


@pytest.mark.parametrize(
    ("code", "status", "bounded"),
    [
        ("ThrottlingException", 429, "ThrottlingException"),
        ("InternalServerException", 500, "InternalServerException"),
        ("SomethingNewException", 400, "OtherError"),
    ],
)
def test_a_failure_worth_retrying_is_the_domains_error_with_a_bounded_code(
    client: Any, code: str, status: int, bounded: str
) -> None:
    with Stubber(client) as stub:
        stub.add_client_error("get_agreement_terms", code, http_status_code=status)

        with pytest.raises(AgreementTermsUnavailableError) as caught:
            MarketplaceAgreementTerms(client).free_trial(AGREEMENT)

    assert caught.value.code == bounded
