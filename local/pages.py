"""The local stack's own pages: an index, the stand-in registration page, the published
events, a redirect.

Never deployed. They run in the gateway process and bypass the function. The stand-in
registration page plays a seller's own sign-up application (what REGISTRATION_URL points at);
without REGISTRATION_URL buyers go to the function's built-in sign-up page instead. Every value
is escaped with html.escape; the pages load nothing but their own inline style, pinned by hash
in the CSP.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from fulfillment import contract
from local.server import LocalRequest, LocalResponse

if TYPE_CHECKING:
    from local.run import LocalStack

INDEX_PATH = "/_local/"
REGISTRATION_PATH = "/_local/registration"
EVENTS_PATH = "/_local/events"
MARKETPLACE_REDIRECT_PATH = "/_local/marketplace"

REGISTRATION_PARAMETER = "registration"
OFFER_PARAMETER = "offer"
# Session ids are secrets.token_urlsafe output; anything else cannot be one.
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,256}")

_CSS = (
    "body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f2f3f3;color:#16191f}"
    "header{background:#232f3e;color:#fff;padding:1rem 2rem}"
    "header h1{margin:0;font-size:1.4rem}"
    "main{max-width:48rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:8px}"
    "dl{display:grid;grid-template-columns:auto 1fr;gap:.3rem 1rem}"
    "dt{color:#545b64}dd{margin:0;overflow-wrap:anywhere;font-family:ui-monospace,monospace}"
    ".note{color:#545b64;font-size:.9rem}"
    "article{border-top:1px solid #d5dbdb;padding:.5rem 0}article h2{font-size:1.1rem}"
    "pre{background:#f2f3f3;padding:.6rem;overflow-x:auto;font-size:.85rem}"
)
_CSP = (
    "default-src 'none'; "
    f"style-src 'sha256-{base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()}'; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS: dict[str, str] = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _document(title: str, body: str, *, banner: str = "Local stack (not deployed)") -> str:
    return (
        "<!doctype html>"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer"><meta name="robots" content="noindex">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{_e(banner)}</h1></header>"
        f"<main><h1>{_e(title)}</h1>{body}</main></body></html>"
    )


def _html(status: int, title: str, body: str) -> LocalResponse:
    return LocalResponse(
        status,
        {**_HEADERS, "Content-Type": "text/html; charset=utf-8"},
        _document(title, body).encode("utf-8"),
    )


def _definition_list(rows: Iterable[tuple[str, str, str]]) -> str:
    """rows of (field name for tests, label, value)."""
    items = "".join(
        f'<dt>{_e(label)}</dt><dd id="{_e(name)}" data-field="{_e(name)}">{_e(value)}</dd>'
        for name, label, value in rows
    )
    return f"<dl>{items}</dl>"


# --------------------------------------------------------------------------- index


def index_page(stack: LocalStack) -> Callable[[LocalRequest], LocalResponse]:
    """`/_local/`: where everything in the local stack is."""

    def link(url: str, anchor: str = "") -> str:
        ident = f' id="{anchor}"' if anchor else ""
        return f'<a{ident} href="{_e(url)}">{_e(url)}</a>'

    def render(request: LocalRequest) -> LocalResponse:
        marketplace = stack.marketplace_page_url
        if stack.registration_url is None:
            handed_to = f"the built-in sign-up page, {_e(stack.signup_url)}?registration=&lt;id&gt;"
        else:
            handed_to = link(stack.registration_url)
        items = [
            f"Fulfillment URL (the function): {link(stack.fulfillment_url)}",
            *(
                [f"AWS Marketplace (stand-in): {link(marketplace, 'marketplace-link')}"]
                if marketplace
                else []
            ),
            f'Buyers are handed to: <span id="signup-target">{handed_to}</span>',
            *(
                [f"Free-trial buyers are handed to: {link(stack.trial_registration_url)}"]
                if stack.trial_registration_url
                else []
            ),
            "Stand-in seller sign-up page (try it with <code>REGISTRATION_URL=/_local/registration"
            f" make run</code>): <code>{_e(stack.standin_registration_url)}</code>",
            f"Marketplace Metering endpoint: <code>{_e(stack.marketplace_url)}</code>",
            f"DynamoDB endpoint: <code>{_e(stack.dynamodb_url)}</code>",
            *(
                [f"Published registration events: {link(stack.url + EVENTS_PATH, 'events-link')}"]
                if stack.events
                else []
            ),
        ]
        start = (
            f'<p><a id="signup-flow-link" href="{_e(marketplace)}">Try the sign-up flow</a>: '
            'pick a test buyer on the Marketplace page and choose "Set up your account".</p>'
            if marketplace
            else ""
        )
        body = (
            f"{start}<ul>{''.join(f'<li>{item}</li>' for item in items)}</ul>"
            '<p class="note">Open the Marketplace page and choose "Set up your account" to run '
            "the whole registration and sign-up flow against the local functions.</p>"
        )
        return _html(200, "Fulfillment: local stack", body)

    return render


# --------------------------------------------------------------------------- redirect


def redirect_page(location: str | None) -> Callable[[LocalRequest], LocalResponse]:
    """`/_local/marketplace`: a 303 to the stand-in's buyer page, or 404 if it is not ours."""

    def render(request: LocalRequest) -> LocalResponse:
        if location is None:
            return _html(
                404,
                "No local Marketplace page",
                "<p>The Marketplace endpoint is external to this stack.</p>",
            )
        return LocalResponse(303, {**_HEADERS, "Location": location}, b"")

    return render


# --------------------------------------------------------------------------- registration


def _attribute(item: Mapping[str, Any], name: str) -> str:
    value = item.get(name)
    if not isinstance(value, dict) or not value:
        return ""
    return str(next(iter(value.values())))


def registration_page(
    client: Any,
    customers_table: str,
    *,
    clock: Callable[[], float] = time.time,
) -> Callable[[LocalRequest], LocalResponse]:
    """`/_local/registration`: plays the seller's sign-up page that receives the hand-off."""

    def not_found() -> LocalResponse:
        return _html(
            404,
            "Unknown or expired registration",
            "<p>This page knows no such registration: it is unknown or expired. "
            "Start again from the Marketplace page.</p>",
        )

    def render(request: LocalRequest) -> LocalResponse:
        session_id = request.query.get(REGISTRATION_PARAMETER, "")
        if not _SESSION_ID.fullmatch(session_id):
            return not_found()
        try:
            session = client.get_item(
                TableName=customers_table,
                Key={
                    contract.PK: {"S": contract.SESSION_PREFIX + session_id},
                    contract.SK: {"S": contract.SESSION_SK},
                },
                ConsistentRead=True,
            ).get("Item")
            expires_at = _attribute(session or {}, contract.EXPIRES_AT)
            # TTL deletion lags in DynamoDB (and never happens in moto): check expiry here.
            if not session or not expires_at or float(expires_at) <= clock():
                return not_found()
            customer = client.get_item(
                TableName=customers_table,
                Key={contract.PK: session["customer_pk"], contract.SK: {"S": contract.CUSTOMER_SK}},
                ConsistentRead=True,
            ).get("Item")
        except (BotoCoreError, ClientError) as exc:
            return _html(
                503,
                "DynamoDB unavailable",
                f"<p>The customers table could not be read: {_e(type(exc).__name__)}.</p>",
            )
        if not customer:
            return not_found()

        rows = [
            ("registration_id", "Registration id", session_id),
            ("product_code", "Product code", _attribute(customer, "product_code")),
            (
                "customer_aws_account_id",
                "AWS account id",
                _attribute(customer, "customer_aws_account_id"),
            ),
        ]
        for name, label in (
            ("license_arn", "License ARN"),
            ("customer_identifier", "Customer identifier"),
            ("agreement_id", "Agreement id"),
        ):
            if _attribute(customer, name):
                rows.append((name, label, _attribute(customer, name)))
        for name, label in (
            ("registration_count", "Registrations"),
            ("first_registered_at", "First registered"),
            ("last_registered_at", "Last registered"),
        ):
            rows.append((name, label, _attribute(customer, name)))
        offer = request.query.get(OFFER_PARAMETER)
        if offer:
            rows.append(("offer", "Offer", offer))
        body = (
            "<p>The fulfillment function handed this buyer over with a registration id. "
            "A real sign-up page would now ask for their details.</p>"
            f"{_definition_list(rows)}"
        )
        return _html(200, "Registration received", body)

    return render


# --------------------------------------------------------------------------- events


def events_page(published: list[dict[str, Any]], *, bus_name: str) -> LocalResponse:
    """`/_local/events`: every event the bus delivered, newest first."""
    items = "".join(
        "<article>"
        f"<h2>{_e(event.get('detail-type', ''))}</h2>"
        f'<p class="note">{_e(event.get("time", ""))} &middot; source '
        f"{_e(event.get('source', ''))} &middot; id {_e(event.get('id', ''))}</p>"
        f"<pre>{_e(json.dumps(event.get('detail'), indent=2, sort_keys=True))}</pre>"
        "</article>"
        for event in reversed(published)
    )
    body = (
        f'<p class="note">What the bus <code>{_e(bus_name)}</code> delivered, newest first '
        f"({len(published)} so far).</p>"
        + (items or "<p>No events yet. Register a customer to see one here.</p>")
    )
    return _html(200, "Published registration events", body)
