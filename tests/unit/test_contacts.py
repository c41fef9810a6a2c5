"""The sign-up rules: registration id shape, field validation, CSRF, session states."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from fulfillment.customers.errors import (
    MalformedRegistrationIdError,
    RegistrationPendingError,
    SignupAlreadyCompletedError,
    SignupSessionUnavailableError,
    UnknownSignupSessionError,
)
from fulfillment.customers.models import ContactDetails, CustomerRecord, SignupSession
from fulfillment.signup import contacts
from fulfillment.signup.errors import CsrfTokenError
from fulfillment.signup.settings import ExtraField

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
REGISTRATION = "abcdefghijklmnopqrstuvwxyz012345"
CSRF = "csrf-0123456789abcdef0123456789ab"
VALID = {
    "company": ["Example Corp"],
    "contact_name": ["Jane Buyer"],
    "email": ["jane@example.com"],
    "phone": ["+1 (555) 010-0000"],
}
VAT = ExtraField("vat_number", "VAT number", True, 20)
TEAM = ExtraField("team_size", "Team size", False, 5)


def posted(**changes: str) -> dict[str, list[str]]:
    form = dict(VALID)
    form.update({name: [value] for name, value in changes.items()})
    return form


@dataclass
class FakeSignupStore:
    sessions: dict[str, SignupSession] = field(default_factory=dict)
    completed: list[tuple[str, ContactDetails]] = field(default_factory=list)

    def get_session(self, session_id: str) -> SignupSession | None:
        return self.sessions.get(session_id)

    def get_customer(self, customer_key: str) -> CustomerRecord | None:
        return None

    def complete_signup(
        self, session: SignupSession, contact: ContactDetails, at: datetime
    ) -> None:
        self.completed.append((session.session_id, contact))


@pytest.fixture
def store() -> FakeSignupStore:
    session = SignupSession(
        session_id=REGISTRATION,
        customer_key="LICENSE#l-1",
        product_code="prod-1",
        expires_at=int(NOW.timestamp()) + 60,
        csrf_token=CSRF,
        completed=False,
    )
    return FakeSignupStore(sessions={REGISTRATION: session})


# --------------------------------------------------------------------------- registration id


@pytest.mark.parametrize(
    "value", ["A" * 16, "A" * 64, REGISTRATION, "a-b_c" * 4, "0123456789_-ABCDabcd"]
)
def test_registration_ids_shaped_like_token_urlsafe_are_accepted(value: str) -> None:
    assert contacts.registration_id([value]) == value


@pytest.mark.parametrize(
    "values",
    [
        None,
        [],
        [""],
        ["A" * 15],
        ["A" * 65],
        ["A" * 16 + "="],
        ["A" * 16 + " "],
        ["A" * 8 + "/" + "A" * 8],
        ["A" * 8 + "+" + "A" * 8],
        ["<script>alert(1)</script>"],
        ["\u00e9" * 20],
        ["A" * 16, "B" * 16],
    ],
)
def test_anything_else_is_a_malformed_registration_id(values: list[str] | None) -> None:
    with pytest.raises(MalformedRegistrationIdError):
        contacts.registration_id(values)


def test_the_same_id_repeated_is_still_one_id() -> None:
    assert contacts.registration_id([REGISTRATION, REGISTRATION]) == REGISTRATION


# --------------------------------------------------------------------------- fields


def test_valid_form_gives_contact_details() -> None:
    form = contacts.validate_contact(posted())

    assert form.errors == {}
    assert form.contact == ContactDetails(
        company="Example Corp",
        contact_name="Jane Buyer",
        email="jane@example.com",
        phone="+1 (555) 010-0000",
    )


def test_surrounding_whitespace_is_stripped_and_inner_whitespace_kept() -> None:
    form = contacts.validate_contact(
        posted(company="  Example  Corp \t", contact_name="\u00a0Jane Buyer\n", phone=" ")
    )

    assert form.contact is not None
    assert form.contact.company == "Example  Corp"
    assert form.contact.contact_name == "Jane Buyer"
    assert form.contact.phone is None  # blank optional field: not stored


def test_values_are_normalised_to_nfc() -> None:
    form = contacts.validate_contact(posted(contact_name="Jose\u0301"))

    assert form.contact is not None
    assert form.contact.contact_name == "Jos\u00e9"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("company", "Enter your company name"),
        ("contact_name", "Enter the contact's name"),
        ("email", "Enter an email address"),
    ],
)
@pytest.mark.parametrize("value", [None, "", "   ", "\t\n"])
def test_required_fields_must_be_filled_in(name: str, message: str, value: str | None) -> None:
    form_fields = posted()
    if value is None:
        del form_fields[name]
    else:
        form_fields[name] = [value]

    form = contacts.validate_contact(form_fields)

    assert form.contact is None
    assert form.errors == {name: message}


def test_phone_is_optional() -> None:
    form_fields = posted()
    del form_fields["phone"]

    form = contacts.validate_contact(form_fields)

    assert form.contact is not None
    assert form.contact.phone is None


@pytest.mark.parametrize(
    ("name", "limit"), [("company", 200), ("contact_name", 200), ("phone", 40)]
)
def test_length_limits(name: str, limit: int) -> None:
    at_limit = ("1" * limit) if name == "phone" else ("x" * limit)

    assert contacts.validate_contact(posted(**{name: at_limit})).errors == {}
    over = contacts.validate_contact(posted(**{name: at_limit + "1"}))
    assert list(over.errors) == [name]
    assert f"{limit} characters or fewer" in over.errors[name]


def test_length_counts_characters_after_stripping() -> None:
    assert contacts.validate_contact(posted(company=" " + "\u00e9" * 200 + " ")).errors == {}


def test_email_length_limit_is_254() -> None:
    local = "a" * 64
    domain = ".".join(["b" * 61] * 3) + ".com"  # 189 characters
    email = f"{local}@{domain}"
    assert len(email) == 254
    assert contacts.validate_contact(posted(email=email)).errors == {}
    longer = f"{local}@c{domain}"
    assert (
        "254 characters or fewer" in contacts.validate_contact(posted(email=longer)).errors["email"]
    )


@pytest.mark.parametrize(
    "email",
    [
        "jane@example.com",
        "jane.q.buyer+aws@mail.example.co.uk",
        "j_o'neil@example.io",
        "JANE@EXAMPLE.COM",
        "x@sub-domain.example.museum",
        "jane@b\u00fccher.example",
        "jane@example.xn--p1ai",
    ],
)
def test_practical_email_addresses_are_accepted(email: str) -> None:
    assert contacts.is_email_address(email)


@pytest.mark.parametrize(
    "email",
    [
        "jane",
        "jane@",
        "@example.com",
        "jane@example",
        "jane@@example.com",
        "jane@ex@ample.com",
        "jane.@example.com",
        ".jane@example.com",
        "ja..ne@example.com",
        "jane@example..com",
        "jane@-example.com",
        "jane@example-.com",
        "jane@example.c",
        "jane@example.123",
        "jane@example.com.",
        "ja ne@example.com",
        "jane@exa mple.com",
        "j\u00e4ne@example.com",
        '"jane"@example.com',
        "jane@[127.0.0.1]",
        "a" * 65 + "@example.com",
        "jane@" + "b" * 64 + ".com",
        "<script>@example.com",
    ],
)
def test_implausible_email_addresses_are_refused(email: str) -> None:
    assert not contacts.is_email_address(email)
    form = contacts.validate_contact(posted(email=email))
    assert form.errors["email"].startswith("Enter an email address in the correct format")


@pytest.mark.parametrize(
    "email",
    [
        # xn-- labels that are no IDNA encoding of anything: Python's codec passes them on
        "jane@xn--zz.example",
        "jane@XN--ZZ.example",
        "jane@xn--a.example",
        "jane@xn--abc-.example",
        "jane@example.xn--zz",
        # Ideographic and full-width full stops, which IDNA 2003 would turn into dots
        "jane@example\u3002com",
        "jane@example\uff0ecom",
        "jane@example\uff61com",
        "jane@b\u00fccher\u3002example",
    ],
)
def test_invalid_a_labels_and_ideographic_full_stops_are_refused_with_a_field_message(
    email: str,
) -> None:
    form = contacts.validate_contact(posted(email=email))

    assert form.contact is None
    assert form.errors == {
        "email": "Enter an email address in the correct format, like name@example.com"
    }


@pytest.mark.parametrize(
    "email", ["jane@xn--bcher-kva.example", "jane@XN--BCHER-KVA.example", "jane@xn--ls8h.la"]
)
def test_real_a_labels_are_accepted_in_any_case(email: str) -> None:
    assert contacts.validate_contact(posted(email=email)).errors == {}


@pytest.mark.parametrize(
    "character",
    [
        "\u200b",  # zero width space
        "\u200c",  # zero width non-joiner
        "\u200d",  # zero width joiner
        "\u2060",  # word joiner
        "\U000e0000",  # the first tag character
        "\U000e0041",  # TAG LATIN CAPITAL LETTER A
        "\U000e007f",  # CANCEL TAG, the last
    ],
)
def test_zero_width_and_tag_characters_in_names_are_refused_with_a_field_message(
    character: str,
) -> None:
    name = f"Ada{character}Lovelace"

    form = contacts.validate_contact(posted(company=f"Widgets{character}", contact_name=name))

    assert form.contact is None
    assert form.errors == {
        "company": "Company must not contain invisible characters",
        "contact_name": "Contact name must not contain invisible characters",
    }


def test_characters_next_to_the_tag_block_are_not_invisible() -> None:
    # U+DFFFF and U+E0080 are unassigned neighbours, not tags; U+E0100 is a variation selector
    assert not contacts.has_invisible_characters("A\U000e0080\U000e0100")
    assert contacts.has_invisible_characters("A\U000e0020")


@pytest.mark.parametrize(
    "phone", ["+1 (555) 010-0000", "0301234567", "+49 30 1234.5678", "555-0100", "1234"]
)
def test_phone_numbers_with_the_allowed_characters_are_accepted(phone: str) -> None:
    assert contacts.validate_contact(posted(phone=phone)).errors == {}


@pytest.mark.parametrize(
    "phone",
    ["call me", "+1 555 0100 ext 2", "555#0100", "1+555", "++1555", "12", "()- .+", "١٢٣٤٥"],
)
def test_other_phone_numbers_are_refused(phone: str) -> None:
    form = contacts.validate_contact(posted(phone=phone))

    assert list(form.errors) == ["phone"]
    assert "only digits, spaces and + ( ) - ." in form.errors["phone"]


@pytest.mark.parametrize(
    "value",
    [
        "Example\x00Corp",
        "Example\nCorp",
        "Example\r\nCorp",
        "Example\tCorp",
        "Example\x1bCorp",
        "Example\x7fCorp",
        "Example\x85Corp",
        "Example\u202eproC",
        "Example\u2066Corp",
        "Example\u2028Corp",
        "Example\ufeffCorp",
    ],
)
def test_control_characters_inside_a_value_are_refused(value: str) -> None:
    form = contacts.validate_contact(posted(company=value, contact_name=value))

    assert set(form.errors) == {"company", "contact_name"}
    assert "control characters" in form.errors["company"]


def test_letters_from_any_script_and_punctuation_are_fine() -> None:
    form = contacts.validate_contact(
        posted(
            company="\u682a\u5f0f\u4f1a\u793e Example & Co. (EMEA) \u2013 \u00d8st",
            contact_name="Zo\u00eb O'Brien-M\u00fcller",
        )
    )

    assert form.errors == {}


def test_only_allow_listed_fields_are_kept() -> None:
    form_fields = posted()
    form_fields.update(
        {"status": ["subscribed"], "pk": ["X"], "extra": ["x"], "signed_up_at": ["now"]}
    )

    form = contacts.validate_contact(form_fields, (TEAM,))

    assert set(form.values) == {"company", "contact_name", "email", "phone", "team_size"}
    assert form.contact is not None
    assert form.contact.extra == ()


def test_a_repeated_field_uses_its_first_value() -> None:
    form_fields = posted()
    form_fields["company"] = ["First Corp", "Second Corp"]

    form = contacts.validate_contact(form_fields)

    assert form.contact is not None
    assert form.contact.company == "First Corp"


def test_invalid_form_keeps_every_value_for_the_re_render() -> None:
    form = contacts.validate_contact(posted(email=" not-an-email ", company="<b>Corp</b>"))

    assert form.contact is None
    assert form.values["email"] == "not-an-email"
    assert form.values["company"] == "<b>Corp</b>"
    assert form.values["phone"] == VALID["phone"][0]


# --------------------------------------------------------------------------- extra fields


def test_required_extra_field_must_be_filled_in() -> None:
    form = contacts.validate_contact(posted(), (VAT, TEAM))

    assert form.errors == {"vat_number": "VAT number is required"}


def test_optional_extra_field_may_be_left_empty() -> None:
    form = contacts.validate_contact(posted(vat_number="DE1", team_size="  "), (VAT, TEAM))

    assert form.contact is not None
    assert form.contact.extra == (("vat_number", "DE1"),)


def test_extra_fields_have_their_configured_maximum_length() -> None:
    ok = contacts.validate_contact(posted(vat_number="D" * 20, team_size="12345"), (VAT, TEAM))
    too_long = contacts.validate_contact(
        posted(vat_number="D" * 21, team_size="123456"), (VAT, TEAM)
    )

    assert ok.contact is not None
    assert ok.contact.extra == (("vat_number", "D" * 20), ("team_size", "12345"))
    assert too_long.errors == {
        "vat_number": "VAT number must be 20 characters or fewer",
        "team_size": "Team size must be 5 characters or fewer",
    }


def test_extra_fields_refuse_control_characters_too() -> None:
    form = contacts.validate_contact(posted(vat_number="DE\x001"), (VAT,))

    assert "control characters" in form.errors["vat_number"]


def test_field_rules_list_built_in_fields_then_extras_in_order() -> None:
    rules = contacts.field_rules((VAT, TEAM))

    assert [r.name for r in rules] == [
        "company",
        "contact_name",
        "email",
        "phone",
        "vat_number",
        "team_size",
    ]
    assert [r.kind for r in rules[:4]] == ["text", "text", "email", "tel"]
    assert [r.required for r in rules] == [True, True, True, False, True, False]


# --------------------------------------------------------------------------- the use case


def test_open_signup_returns_a_live_session(store: FakeSignupStore) -> None:
    assert contacts.open_signup(store, REGISTRATION, NOW).csrf_token == CSRF


def test_open_signup_of_an_unknown_id(store: FakeSignupStore) -> None:
    with pytest.raises(UnknownSignupSessionError):
        contacts.open_signup(store, "B" * 32, NOW)


@pytest.mark.parametrize("seconds_left", [0, -1, -3600])
def test_open_signup_of_an_expired_session_even_before_ttl_deletion(
    store: FakeSignupStore, seconds_left: int
) -> None:
    session = store.sessions[REGISTRATION]
    store.sessions[REGISTRATION] = session._replace(expires_at=int(NOW.timestamp()) + seconds_left)

    with pytest.raises(SignupSessionUnavailableError) as raised:
        contacts.open_signup(store, REGISTRATION, NOW)
    assert not isinstance(raised.value, UnknownSignupSessionError)


def test_open_signup_of_a_completed_session(store: FakeSignupStore) -> None:
    store.sessions[REGISTRATION] = store.sessions[REGISTRATION]._replace(completed=True)

    with pytest.raises(SignupAlreadyCompletedError):
        contacts.open_signup(store, REGISTRATION, NOW)


LATER = int(NOW.timestamp()) + 3600


def test_a_deferred_link_without_its_session_yet_is_pending_until_its_expiry(
    store: FakeSignupStore,
) -> None:
    with pytest.raises(RegistrationPendingError):
        contacts.open_signup(store, "B" * 32, NOW, deferred=LATER)
    # After the registration's expiry it is what any unknown id is
    with pytest.raises(UnknownSignupSessionError):
        contacts.open_signup(store, "B" * 32, NOW, deferred=int(NOW.timestamp()))


def test_a_deferred_link_whose_customer_is_not_recorded_yet_is_pending(
    store: FakeSignupStore,
) -> None:
    # The fake store has no customer: the replay has not written it yet
    with pytest.raises(RegistrationPendingError):
        contacts.open_signup(store, REGISTRATION, NOW, deferred=LATER)
    # A link without the hint came from a 303 (customer written): no customer read
    assert contacts.open_signup(store, REGISTRATION, NOW).session_id == REGISTRATION


@pytest.mark.parametrize(
    ("values", "expected"),
    [(None, None), (["1900000000"], 1_900_000_000), (["1", "2"], None), (["-1"], None),
     (["\uff11\uff12"], None), (["9" * 13], None), ([""], None)],
)  # fmt: skip
def test_the_deferred_hint_is_one_number_or_ignored(
    values: list[str] | None, expected: int | None
) -> None:
    assert contacts.deferred_until(values) == expected


def test_submit_stores_valid_contact_details_once(store: FakeSignupStore) -> None:
    result = contacts.submit_signup(
        store, REGISTRATION, {**posted(), "csrf_token": [CSRF]}, (), NOW
    )

    assert result.completed
    assert store.completed == [(REGISTRATION, result.form.contact)]


def test_submit_with_invalid_input_stores_nothing(store: FakeSignupStore) -> None:
    result = contacts.submit_signup(
        store, REGISTRATION, {**posted(email="x"), "csrf_token": [CSRF]}, (), NOW
    )

    assert not result.completed
    assert list(result.form.errors) == ["email"]
    assert store.completed == []


@pytest.mark.parametrize(
    "csrf",
    [None, [], [""], ["wrong"], [CSRF + "x"], [CSRF[:-1]], [CSRF, "other"], [CSRF.upper()]],
)
def test_submit_without_the_sessions_csrf_token_is_refused(
    store: FakeSignupStore, csrf: list[str] | None
) -> None:
    form = posted()
    if csrf is not None:
        form["csrf_token"] = csrf

    with pytest.raises(CsrfTokenError):
        contacts.submit_signup(store, REGISTRATION, form, (), NOW)
    assert store.completed == []


def test_a_session_without_a_csrf_token_accepts_none(store: FakeSignupStore) -> None:
    store.sessions[REGISTRATION] = store.sessions[REGISTRATION]._replace(csrf_token="")

    with pytest.raises(CsrfTokenError):
        contacts.submit_signup(store, REGISTRATION, {**posted(), "csrf_token": [""]}, (), NOW)


def test_submit_to_an_expired_or_completed_session_is_refused(store: FakeSignupStore) -> None:
    form = {**posted(), "csrf_token": [CSRF]}
    session = store.sessions[REGISTRATION]

    store.sessions[REGISTRATION] = session._replace(expires_at=int(NOW.timestamp()))
    with pytest.raises(SignupSessionUnavailableError):
        contacts.submit_signup(store, REGISTRATION, form, (), NOW)
    store.sessions[REGISTRATION] = session._replace(completed=True)
    with pytest.raises(SignupAlreadyCompletedError):
        contacts.submit_signup(store, REGISTRATION, form, (), NOW)
    with pytest.raises(UnknownSignupSessionError):
        contacts.submit_signup(store, "C" * 32, form, (), NOW)
    assert store.completed == []
