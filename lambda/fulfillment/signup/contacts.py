"""The sign-up use case: the buyer's contact details, checked and stored once per registration.

Pure rules (registration id shape, field validation) plus two steps against the SignupStore
port. No boto3, no environment, no HTTP: the entry point (signup.py) does the parsing.
"""

from __future__ import annotations

import hmac
import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, NamedTuple

from fulfillment.core.ids import is_registration_id
from fulfillment.customers.errors import (
    MalformedRegistrationIdError,
    RegistrationPendingError,
    SignupAlreadyCompletedError,
    SignupSessionUnavailableError,
    UnknownSignupSessionError,
)
from fulfillment.customers.models import ContactDetails, SignupSession
from fulfillment.signup.errors import CsrfTokenError
from fulfillment.signup.ports import SignupStore

if TYPE_CHECKING:
    from fulfillment.signup.settings import ExtraField

REGISTRATION_FIELD = "registration"
CSRF_FIELD = "csrf_token"

MAX_NAME_LENGTH = 200
MAX_EMAIL_LENGTH = 254
MAX_PHONE_LENGTH = 40

_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_TOP_LEVEL = re.compile(r"[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59}")
_PHONE = re.compile(r"\+?[0-9 ().\-]+")
_MIN_PHONE_DIGITS = 4
# Characters no one types into a name on purpose: bidirectional overrides and isolates
# (they reorder how a value is displayed to whoever reads it later) and line separators.
_INVISIBLE = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029")
# Characters that show as nothing at all: zero-width space, non-joiner and joiner, word joiner,
# the zero-width no-break space, and the tag characters (U+E0000..U+E007F). A name holding one
# looks like another name that does not.
_ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff")
_TAGS = range(0xE0000, 0xE0080)
# Full stops IDNA 2003 (Python's "idna" codec) takes as dots; an address typed with one is
# not what a mail server will be given.
_IDEOGRAPHIC_FULL_STOPS = frozenset("\u3002\uff0e\uff61")
_A_LABEL_PREFIX = "xn--"

Kind = Literal["text", "email", "tel"]


class FieldRule(NamedTuple):
    """One field of the sign-up form and what it accepts."""

    name: str
    label: str
    required: bool
    max_length: int
    kind: Kind = "text"
    # The message when a required field is left empty.
    missing: str = ""


BUILTIN_FIELDS: tuple[FieldRule, ...] = (
    FieldRule("company", "Company", True, MAX_NAME_LENGTH, missing="Enter your company name"),
    FieldRule(
        "contact_name", "Contact name", True, MAX_NAME_LENGTH, missing="Enter the contact's name"
    ),
    FieldRule(
        "email", "Email address", True, MAX_EMAIL_LENGTH, "email", missing="Enter an email address"
    ),
    FieldRule("phone", "Phone number", False, MAX_PHONE_LENGTH, "tel"),
)


def field_rules(extra_fields: Sequence[ExtraField] = ()) -> tuple[FieldRule, ...]:
    """The form's fields in display order: the built-in ones, then the configured extras."""
    extras = tuple(
        FieldRule(f.name, f.label, f.required, f.max_length, missing=f"{f.label} is required")
        for f in extra_fields
    )
    return BUILTIN_FIELDS + extras


class ContactForm(NamedTuple):
    """A submitted form after validation: cleaned values, messages by field, the result."""

    values: Mapping[str, str]
    errors: Mapping[str, str] = MappingProxyType({})
    contact: ContactDetails | None = None

    @property
    def valid(self) -> bool:
        return self.contact is not None


class SignupResult(NamedTuple):
    """What a submission came to: completed (``form.contact`` stored) or invalid input."""

    session: SignupSession
    form: ContactForm

    @property
    def completed(self) -> bool:
        return self.form.valid


def registration_id(values: Sequence[str] | None) -> str:
    """The one registration id in ``values``; MalformedRegistrationIdError otherwise."""
    distinct = set(values or ())
    if len(distinct) != 1:
        raise MalformedRegistrationIdError("missing or repeated registration id")
    value = distinct.pop()
    if not is_registration_id(value):
        raise MalformedRegistrationIdError("registration id has the wrong shape")
    return value


def deferred_until(values: Sequence[str] | None) -> int | None:
    """The ``deferred`` hint of a link from the 202 page (epoch seconds), or None when absent
    or not one number: a hint only, so a bad one is ignored, never an error."""
    distinct = set(values or ())
    if len(distinct) != 1:
        return None
    value = distinct.pop()
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 12 else None


def open_signup(
    store: SignupStore, session_id: str, now: datetime, deferred: int | None = None
) -> SignupSession:
    """The session behind a sign-up link, if the buyer may still fill in the form.

    ``deferred``: the link came from the 202 page of a registration parked for replay, which
    may be recorded until then. Without its session, or with the session but not yet its
    customer, such a link raises RegistrationPendingError ("still finishing") instead of
    UnknownSignupSessionError ("expired"). Only such links pay for the customer read.
    """
    session = store.get_session(session_id)
    pending = deferred is not None and deferred > int(now.timestamp())
    if session is None:
        if pending:
            raise RegistrationPendingError("registration not recorded yet")
        raise UnknownSignupSessionError("no such registration")
    _check_open(session, now)
    if deferred is not None and store.get_customer(session.customer_key) is None:
        raise RegistrationPendingError("registration's customer not recorded yet")
    return session


def submit_signup(
    store: SignupStore,
    session_id: str,
    posted: Mapping[str, Sequence[str]],
    extra_fields: Sequence[ExtraField],
    now: datetime,
) -> SignupResult:
    """Check the form's CSRF token, validate it and store the contact details once.

    Raises CsrfTokenError, UnknownSignupSessionError, SignupSessionUnavailableError (expired)
    or SignupAlreadyCompletedError; invalid input is a result, not an error.
    """
    session = store.get_session(session_id)
    if session is None:
        raise UnknownSignupSessionError("no such registration")
    if not csrf_token_matches(session, posted.get(CSRF_FIELD)):
        raise CsrfTokenError("missing or wrong CSRF token")
    _check_open(session, now)
    form = validate_contact(posted, extra_fields)
    if form.contact is not None:
        store.complete_signup(session, form.contact, now)
    return SignupResult(session, form)


def csrf_token_matches(session: SignupSession, posted: Sequence[str] | None) -> bool:
    """True when exactly one token was posted and it is the session's (constant time)."""
    distinct = set(posted or ())
    if len(distinct) != 1 or not session.csrf_token:
        return False
    return hmac.compare_digest(distinct.pop().encode(), session.csrf_token.encode())


def _check_open(session: SignupSession, now: datetime) -> None:
    if session.completed:
        raise SignupAlreadyCompletedError("sign-up already submitted")
    # DynamoDB deletes expired items up to days late: the stored expiry decides.
    if session.expires_at <= int(now.timestamp()):
        raise SignupSessionUnavailableError("sign-up session expired")


def validate_contact(
    posted: Mapping[str, Sequence[str]], extra_fields: Sequence[ExtraField] = ()
) -> ContactForm:
    """Clean and check the allow-listed fields of ``posted``; every other field is ignored."""
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    for rule in field_rules(extra_fields):
        submitted = posted.get(rule.name) or ()
        value = clean(submitted[0]) if submitted else ""
        values[rule.name] = value
        message = field_error(rule, value)
        if message is not None:
            errors[rule.name] = message
    if errors:
        return ContactForm(values, errors)
    contact = ContactDetails(
        company=values["company"],
        contact_name=values["contact_name"],
        email=values["email"],
        phone=values["phone"] or None,
        extra=tuple((f.name, values[f.name]) for f in extra_fields if values[f.name]),
    )
    return ContactForm(values, {}, contact)


def clean(value: str) -> str:
    """``value`` in Unicode NFC without surrounding whitespace (nothing else is changed)."""
    return unicodedata.normalize("NFC", value).strip()


def field_error(rule: FieldRule, value: str) -> str | None:
    """The message for ``value`` in ``rule``'s field, or None when it is acceptable."""
    label = rule.label
    if not value:
        return rule.missing if rule.required else None
    if has_control_characters(value):
        return f"{label} must not contain control characters or line breaks"
    if has_invisible_characters(value):
        return f"{label} must not contain invisible characters"
    if len(value) > rule.max_length:
        return f"{label} must be {rule.max_length} characters or fewer"
    if rule.kind == "email" and not is_email_address(value):
        return "Enter an email address in the correct format, like name@example.com"
    if rule.kind == "tel" and not is_phone_number(value):
        return "Enter a phone number using only digits, spaces and + ( ) - ."
    return None


def has_control_characters(value: str) -> bool:
    return any(
        unicodedata.category(c) in ("Cc", "Cs") or c in _INVISIBLE or c == "\ufeff" for c in value
    )


def has_invisible_characters(value: str) -> bool:
    """Zero-width characters or tag characters anywhere in ``value``."""
    return any(c in _ZERO_WIDTH or ord(c) in _TAGS for c in value)


def is_email_address(value: str) -> bool:
    """A practical check: one @, a dot-atom local part, a domain with a top-level label."""
    if len(value) > MAX_EMAIL_LENGTH or value.count("@") != 1:
        return False
    local, domain = value.split("@")
    if not 0 < len(local) <= 64 or not _EMAIL_LOCAL.fullmatch(local):
        return False
    if any(c in _IDEOGRAPHIC_FULL_STOPS for c in domain):
        return False
    try:
        # Internationalised domain names are accepted in their Unicode form.
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_domain.split(".")
    if len(labels) < 2 or len(ascii_domain) > 253:
        return False
    return (
        all(_DOMAIN_LABEL.fullmatch(label) for label in labels)
        and bool(_TOP_LEVEL.fullmatch(labels[-1]))
        and all(_is_a_label(label) for label in labels if label.lower().startswith(_A_LABEL_PREFIX))
    )


def _is_a_label(label: str) -> bool:
    """True when ``label`` (``xn--...``) is the IDNA encoding of a non-ASCII label: the codec
    passes ASCII labels through unchecked, so ``xn--zz`` would otherwise pass."""
    try:
        unicode_label = label[len(_A_LABEL_PREFIX) :].encode("ascii").decode("punycode")
        return not unicode_label.isascii() and (
            unicode_label.encode("idna").decode("ascii").lower() == label.lower()
        )
    except (UnicodeError, ValueError):
        return False


def is_phone_number(value: str) -> bool:
    return bool(_PHONE.fullmatch(value)) and sum(c.isdigit() for c in value) >= _MIN_PHONE_DIGITS
