"""Settings of the self-service flows and their delivery, and the pure
parts of delivery: message rendering and Standard Webhooks signatures."""

from __future__ import annotations

import base64
import json
import os
import time

import pytest
from standardwebhooks.webhooks import Webhook

from authsvc.clock import FakeClock
from authsvc.config import Settings
from authsvc.domain.delivery.messages import Messages
from authsvc.errors import ConfigError
from authsvc.runtime.senders import SmtpChannel, WebhookChannel
from authsvc.store.outbox import Message

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def test_self_service_is_off_with_nothing_to_deliver_by_default():
    """No variables: sign-up off, 15-minute digit codes, no channel configured."""
    settings = Settings.from_env({})

    assert (settings.signup, settings.code_ttl, settings.code_format, settings.smtp_url,
            settings.webhook_url, settings.email_channel) == (
        "off", 900, "digits", None, None, "smtp")


@pytest.mark.parametrize(("environ", "variable"), [
    ({"AUTHSVC_SIGNUP": "yes"}, "AUTHSVC_SIGNUP"),
    ({"AUTHSVC_CODE_TTL": "5"}, "AUTHSVC_CODE_TTL"),
    ({"AUTHSVC_CODE_FORMAT": "emoji"}, "AUTHSVC_CODE_FORMAT"),
    ({"AUTHSVC_SMTP_URL": "http://mail.example.com"}, "AUTHSVC_SMTP_URL"),
    ({"AUTHSVC_SMTP_URL": "smtp://mail.example.com:25"}, "AUTHSVC_SMTP_FROM"),
    ({"AUTHSVC_WEBHOOK_URL": "https://hooks.example.com"}, "AUTHSVC_WEBHOOK_SECRET"),
    ({"AUTHSVC_WEBHOOK_SECRET": "not-a-whsec"}, "AUTHSVC_WEBHOOK_SECRET"),
    ({"AUTHSVC_WEBHOOK_SECRET": "whsec_c2hvcnQ="}, "AUTHSVC_WEBHOOK_SECRET"),
    ({"AUTHSVC_EMAIL_CHANNEL": "pigeon"}, "AUTHSVC_EMAIL_CHANNEL"),
    ({"AUTHSVC_OUTBOX_RETRY_BASE": "0"}, "AUTHSVC_OUTBOX_RETRY_BASE"),
])
def test_invalid_values_name_the_variable(environ, variable):
    """Each invalid value stops start-up naming its variable."""
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(environ)

    assert str(caught.value).startswith(variable)


def test_delivery_secrets_print_masked():
    """The SMTP password and the webhook secret never show in repr."""
    settings = Settings.from_env({
        "AUTHSVC_SMTP_URL": "smtp://mailer:hunter2@mail.example.com:587?starttls=true",
        "AUTHSVC_SMTP_FROM": "no-reply@example.com",
        "AUTHSVC_WEBHOOK_URL": "https://hooks.example.com/notify",
        "AUTHSVC_WEBHOOK_SECRET": SECRET})

    assert "hunter2" not in repr(settings)
    assert SECRET.removeprefix("whsec_") not in repr(settings)


def _sealed(messages: Messages, kind: str, to: str, **fields: str) -> Message:
    """A message as the outbox hands it back, its payload sealed by ``messages``."""
    channel = "email" if "@" in to else "phone"
    return Message(7, kind, channel, to, messages.seal(kind, to, fields), 1)


def test_a_message_renders_its_code_and_link_and_its_payload_is_sealed():
    """The code is in the text and the optional link; the stored payload is encrypted
    and bound to its kind and recipient."""
    messages = Messages(os.urandom(32), 900, "https://app.example.com/account")
    message = _sealed(messages, "verify", "ada@example.com", code="12345678")

    rendered = messages.render(message)
    moved = Message(7, "verify", "email", "eve@example.com", message.payload, 1)

    assert b"12345678" not in message.payload
    assert "12345678" in rendered.text and "15 minutes" in rendered.text
    assert rendered.fields["link"] == ("https://app.example.com/account?purpose=verify&"
                                       "email=ada%40example.com&code=12345678")
    with pytest.raises(Exception):  # noqa: B017 (cryptography's InvalidTag)
        messages.render(moved)


def test_webhook_events_are_signed_as_standard_webhooks_says():
    """The reference library accepts the headers and body the channel makes."""
    clock = FakeClock(float(int(time.time())))
    messages = Messages(os.urandom(32), 900, None)
    message = _sealed(messages, "reset", "+14155550123", code="87654321")
    channel = WebhookChannel("https://hooks.example.com", base64.b64decode(
        SECRET.removeprefix("whsec_")), clock)

    body, headers = channel.signed(message, messages.render(message))
    event = Webhook(SECRET).verify(body, headers)

    assert headers["webhook-id"] == "msg_authsvc_7"
    assert event == json.loads(body)
    assert (event["type"], event["data"]["to"], event["data"]["code"]) == (
        "authsvc.message.reset", "+14155550123", "87654321")


@pytest.mark.parametrize(("url", "expected"), [
    ("smtp://relay.internal", ("relay.internal", 25, False, False, None, None)),
    ("smtp://u%40x:p%2Fw@mail.example.com?starttls=true",
     ("mail.example.com", 587, False, True, "u@x", "p/w")),
    ("smtps://mail.example.com", ("mail.example.com", 465, True, False, None, None)),
])
def test_smtp_urls_choose_port_tls_and_credentials(url, expected):
    """smtp:// plain (25), ?starttls=true (587), smtps:// TLS from the start (465)."""
    channel = SmtpChannel(url, "no-reply@example.com")

    assert (channel._host, channel._port, channel._tls, channel._starttls, channel._user,
            channel._password) == expected
