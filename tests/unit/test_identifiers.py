"""Identifiers and new passwords (``authsvc.domain.accounts.identifiers``): the rules in that
module's docstring, each refusal an InvalidArgument naming its field."""

from __future__ import annotations

import pytest

from authsvc.domain.accounts.identifiers import Identifier, check_password, kind_of, normalize
from authsvc.errors import InvalidArgument

EMAIL_254 = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com"


# --- email ------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "canonical"), [
    ("alice@example.com", "alice@example.com"),
    ("Alice.Smith@Example.COM", "alice.smith@example.com"),
    ("o'neil+tag@mail.example.org", "o'neil+tag@mail.example.org"),
    ("x@a-b.io", "x@a-b.io"),
    (EMAIL_254, EMAIL_254),
])
def test_a_valid_email_is_stored_lower_cased(raw, canonical):
    """A valid address (up to 254 characters) normalises to its lower-cased form."""
    identifier = normalize("email", raw)

    assert identifier == Identifier("email", canonical)


@pytest.mark.parametrize(("raw", "description"), [
    ("", "must not be empty"),
    ("a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 58 + ".com",
     "must be at most 254 characters"),
    ("a" * 65 + "@example.com", "is not a valid email address"),
    ("alice.example.com", "is not a valid email address"),
    ("alice@localhost", "is not a valid email address"),
    (".alice@example.com", "is not a valid email address"),
    ("alice.@example.com", "is not a valid email address"),
    ("al..ice@example.com", "is not a valid email address"),
    ("alice@-example.com", "is not a valid email address"),
    ("alice@example-.com", "is not a valid email address"),
    ("alice@example..com", "is not a valid email address"),
    ("alice@example.123", "is not a valid email address"),
    ("al ice@example.com", "is not a valid email address"),
    ("alice@exa_mple.com", "is not a valid email address"),
    ("alice@example.com\x00", "is not a valid email address"),
    ("élise@example.com", "is not a valid email address"),
], ids=["empty", "255-characters", "local-part-65", "no-at", "one-label-domain",
        "leading-dot", "trailing-dot", "double-dot", "label-starts-with-hyphen",
        "label-ends-with-hyphen", "empty-label", "numeric-tld", "space", "underscore-in-domain",
        "nul", "non-ascii-local-part"])
def test_an_invalid_email_names_the_email_field(raw, description):
    """Anything that breaks the email rules is InvalidArgument on "email" saying why."""
    with pytest.raises(InvalidArgument) as caught:
        normalize("email", raw)

    assert (caught.value.field, caught.value.description) == ("email", description)
    assert str(caught.value) == f"email: {description}"


# --- phone ------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "canonical"), [
    ("+14155550123", "+14155550123"),
    ("+1 (415) 555-0123", "+14155550123"),
    ("+44 20 7946 0958", "+442079460958"),
    ("+1.415.555.0123", "+14155550123"),
    ("+12345678", "+12345678"),
    ("+123456789012345", "+123456789012345"),
])
def test_a_phone_number_keeps_only_plus_and_digits(raw, canonical):
    """Spaces, hyphens, dots and parentheses are dropped, leaving + and 8 to 15 digits."""
    identifier = normalize("phone", raw)

    assert identifier == Identifier("phone", canonical)


@pytest.mark.parametrize(("raw", "description"), [
    ("", "must not be empty"),
    ("+1" + " " * 30 + "4", "must be at most 32 characters"),
    ("14155550123", "must be an E.164 number such as +14155550123"),
    ("+04155550123", "must be an E.164 number such as +14155550123"),
    ("+1234567", "must be an E.164 number such as +14155550123"),
    ("+1234567890123456", "must be an E.164 number such as +14155550123"),
    ("+1 415 555 O123", "must be an E.164 number such as +14155550123"),
    ("+1/415/555/0123", "must be an E.164 number such as +14155550123"),
    ("+١٤١٥٥٥٥٠١٢٣", "must be an E.164 number such as +14155550123"),
], ids=["empty", "33-characters", "no-plus", "leading-zero", "seven-digits",
        "sixteen-digits", "letter", "slashes", "arabic-indic-digits"])
def test_an_invalid_phone_number_names_the_phone_field(raw, description):
    """Anything but E.164 after dropping punctuation is InvalidArgument on "phone"."""
    with pytest.raises(InvalidArgument) as caught:
        normalize("phone", raw)

    assert (caught.value.field, caught.value.description) == ("phone", description)


# --- username ---------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "canonical"), [
    ("alice", "alice"),
    ("Alice_01", "alice_01"),
    ("0.a-b", "0.a-b"),
    ("abc", "abc"),
    ("U" * 64, "u" * 64),
])
def test_a_valid_username_is_stored_lower_cased(raw, canonical):
    """3 to 64 ASCII letters, digits, '.', '_' and '-' starting with a letter or digit
    normalise to lower case."""
    identifier = normalize("username", raw)

    assert identifier == Identifier("username", canonical)


USERNAME_RULE = ("must be 3 to 64 letters, digits, '.', '_' or '-', "
                 "starting with a letter or digit")


@pytest.mark.parametrize(("raw", "description"), [
    ("", "must not be empty"),
    ("u" * 65, "must be at most 64 characters"),
    ("ab", USERNAME_RULE),
    ("_alice", USERNAME_RULE),
    (".alice", USERNAME_RULE),
    ("al ice", USERNAME_RULE),
    ("alice@home", USERNAME_RULE),
    ("émile", USERNAME_RULE),
    ("alice\x00", USERNAME_RULE),
], ids=["empty", "65-characters", "two-characters", "leading-underscore", "leading-dot",
        "space", "at-sign", "non-ascii", "nul"])
def test_an_invalid_username_names_the_username_field(raw, description):
    """A username breaking the rules is InvalidArgument on "username" saying why."""
    with pytest.raises(InvalidArgument) as caught:
        normalize("username", raw)

    assert (caught.value.field, caught.value.description) == ("username", description)


# --- which kind -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["email", "phone", "username"])
def test_kind_of_returns_a_known_kind(kind):
    """Each of email, phone and username is its own kind."""
    assert kind_of(kind) == kind


@pytest.mark.parametrize(("kind", "field"), [(None, "identifier"), ("", "identifier"),
                                              ("EMAIL", "identifier"), ("id", "user")])
def test_kind_of_refuses_anything_else_naming_the_given_field(kind, field):
    """No kind, or one not exactly email/phone/username, is InvalidArgument on the field
    the caller names ("identifier" by default)."""
    arguments = {} if field == "identifier" else {"field": field}

    with pytest.raises(InvalidArgument) as caught:
        kind_of(kind, **arguments)

    assert (caught.value.field, caught.value.description) == (
        field, "one of email, phone or username is required")


# --- new passwords ----------------------------------------------------------------------


@pytest.mark.parametrize("password", ["p" * 8, " padded password ", "é" * 1024, "\x00" * 8])
def test_a_new_password_of_8_to_1024_characters_is_kept_exactly(password):
    """A password of 8 to 1024 characters comes back exactly as given, untrimmed."""
    assert check_password(password) == password


@pytest.mark.parametrize(("password", "description"), [
    ("p" * 7, "must be at least 8 characters"),
    ("", "must be at least 8 characters"),
    ("p" * 1025, "must be at most 1024 characters"),
])
def test_a_new_password_outside_8_to_1024_characters_is_refused(password, description):
    """Fewer than 8 or more than 1024 characters is InvalidArgument on "password"."""
    with pytest.raises(InvalidArgument) as caught:
        check_password(password)

    assert (caught.value.field, caught.value.description) == ("password", description)


def test_check_password_names_the_field_it_is_given():
    """The refusal names the caller's field, e.g. new_password."""
    with pytest.raises(InvalidArgument) as caught:
        check_password("short", field="new_password")

    assert caught.value.field == "new_password"
