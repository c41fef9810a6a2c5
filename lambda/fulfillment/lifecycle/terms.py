"""Adapter: GetAgreementTerms (service `marketplace-agreement`, us-east-1), behind the
AgreementTermsSource port. Every page of the agreement's accepted terms is read; the agreement
has a free trial when one of them is a `freeTrialPricingTerm`. A refusal that asking again
cannot change (not allowed, no such agreement, an invalid id) is no answer: logged, counted
(`AgreementTermsUnknown`), and the notification is applied without it. Throttling, AWS-side
errors and network failures that outlast botocore's retries fail the record for SQS to retry.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from fulfillment.contract import REASON_DIMENSION, AgreementTermsUnknownReason, MetricName
from fulfillment.core.aws import RepeatedTokenError, every_page
from fulfillment.core.observability import count_by, logger
from fulfillment.lifecycle.subscriptions import AgreementTermsUnavailableError

# The Agreement API's endpoint for the AWS Marketplace catalog, whatever region the function
# runs in (the events it follows arrive in us-east-1 too).
AGREEMENT_REGION = "us-east-1"
FREE_TRIAL_TERM = "freeTrialPricingTerm"
# The model's largest page: most agreements answer in one call.
PAGE_SIZE = 50
PERMANENT_ERRORS = {
    "AccessDeniedException": AgreementTermsUnknownReason.ACCESS_DENIED,
    "ResourceNotFoundException": AgreementTermsUnknownReason.NOT_FOUND,
    "ValidationException": AgreementTermsUnknownReason.INVALID_REQUEST,
}
# Codes outside these are reported under one name so logs and metrics stay bounded.
KNOWN_ERROR_CODES = frozenset({"ThrottlingException", "InternalServerException"})
OTHER_ERROR_CODE = "OtherError"
NETWORK_ERROR_CODE = "NetworkError"
REPEATED_TOKEN_ERROR_CODE = "RepeatedNextToken"


class MarketplaceAgreementTerms:
    def __init__(self, client: Any) -> None:
        self._client = client

    def free_trial(self, agreement_id: str) -> bool | None:
        pages = self._client.get_paginator("get_agreement_terms").paginate(
            agreementId=agreement_id, PaginationConfig={"PageSize": PAGE_SIZE}
        )
        found = False
        try:
            for page in every_page(pages, "nextToken"):
                found |= any(FREE_TRIAL_TERM in term for term in page.get("acceptedTerms") or [])
        except RepeatedTokenError:
            raise AgreementTermsUnavailableError(REPEATED_TOKEN_ERROR_CODE) from None
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            reason = PERMANENT_ERRORS.get(code)
            if reason is not None:
                logger.warning(
                    "GetAgreementTerms refused; the agreement's free trial stays unknown",
                    extra={"error_code": code, "agreement_id": agreement_id},
                )
                count_by(MetricName.AGREEMENT_TERMS_UNKNOWN, REASON_DIMENSION, reason)
                return None
            raise AgreementTermsUnavailableError(
                code if code in KNOWN_ERROR_CODES else OTHER_ERROR_CODE
            ) from None
        except BotoCoreError:
            raise AgreementTermsUnavailableError(NETWORK_ERROR_CODE) from None
        return found
