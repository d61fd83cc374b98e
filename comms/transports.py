"""Sending one message over one transport: Slack-compatible webhook, e-mail, signed webhook.

Each sender returns a `SendResult` or raises `SendError`, whose `transient` flag tells the
delivery service whether another attempt could succeed. Timeouts are short
(QUELL_COMMS_HTTP_TIMEOUT) so a slow receiver costs a worker seconds, never minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from config import outbound
from config.validators import without_control_characters
from incidents.mail import mail_subject

SIGNATURE_HEADER = "X-Quell-Signature"
TIMESTAMP_HEADER = "X-Quell-Timestamp"
DELIVERY_HEADER = "X-Quell-Delivery"
EXCERPT_CHARS = 500


@dataclass
class SendResult:
    code: int | None = None
    excerpt: str = ""


class SendError(Exception):
    """A failed attempt. `transient`: worth retrying (timeouts, 5xx, 429, connection errors)."""

    def __init__(self, message: str, *, transient: bool, code: int | None = None, excerpt=""):
        super().__init__(message)
        self.transient = transient
        self.code = code
        self.excerpt = excerpt


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value: sha256=<hex HMAC of "<timestamp>.<body>">."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str,
    *,
    body: bytes,
    timestamp: str,
    signature: str,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> bool:
    """What a receiver runs: the signature matches and the timestamp is recent (no replay)."""
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - sent) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature or "")


def _timeout() -> float:
    """Seconds a receiver may take."""
    return float(settings.QUELL_COMMS_HTTP_TIMEOUT)


def _post(url: str, body: bytes, headers: dict[str, str]) -> SendResult:
    """POST a body under the outbound policy; SendError (transient or not) on anything but 2xx."""
    headers = {**headers, "User-Agent": "Quell/1.0 (+incident communications)"}
    try:
        response = outbound.post(
            url, body, headers, timeout=_timeout(), excerpt_chars=EXCERPT_CHARS
        )
    except outbound.OutboundRefused as exc:
        raise SendError(f"Refused by the outbound policy: {exc}", transient=False) from None
    except TimeoutError:
        raise SendError(f"Timed out after {_timeout():g}s", transient=True) from None
    except (ConnectionError, OSError) as exc:
        raise SendError(f"Connection failed: {exc}", transient=True) from None
    code, excerpt = response.status, response.excerpt
    if 200 <= code < 300:
        return SendResult(code=code, excerpt=excerpt)
    if 300 <= code < 400:
        # A redirect could lead anywhere, internal addresses included: never followed.
        raise SendError(
            f"HTTP {code} {response.reason}: redirects are not followed; use the final URL",
            transient=False,
            code=code,
            excerpt=excerpt,
        )
    # 408 and 429 ask to come back later; other 4xx will not change by retrying.
    transient = code >= 500 or code in (408, 425, 429)
    raise SendError(
        f"HTTP {code} {response.reason}", transient=transient, code=code, excerpt=excerpt
    )


def slack_text(subject: str, body: str) -> str:
    """Message text for Slack and Mattermost: bold subject, mentions in Slack's syntax."""
    subject, body = without_control_characters(subject), without_control_characters(body)
    text = f"*{subject}*\n{body}" if subject and not body.startswith("@") else body
    # Both Slack and Mattermost incoming webhooks understand <!channel> and <!here>.
    return text.replace("@channel", "<!channel>").replace("@here", "<!here>")


def send_slack(*, url: str, subject: str, body: str) -> SendResult:
    """POST {"text": ...} to a Slack-compatible incoming webhook."""
    if not url:
        raise SendError("The channel has no webhook URL.", transient=False)
    payload = json.dumps({"text": slack_text(subject, body)}).encode()
    return _post(url, payload, {"Content-Type": "application/json"})


def send_webhook(*, url: str, secret: str, payload: dict, delivery_id: int) -> SendResult:
    """POST the JSON payload, signed with HMAC-SHA256 over "<timestamp>.<body>"."""
    if not url:
        raise SendError("The channel has no webhook URL.", transient=False)
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        DELIVERY_HEADER: str(delivery_id),
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    return _post(url, body, headers)


def send_email(
    *, recipients: list[str], subject: str, body: str, headers: dict | None = None
) -> SendResult:
    """Send through Django's configured mail backend, one message to all recipients (Bcc)."""
    if not recipients:
        raise SendError("No recipients.", transient=False)
    from_email = settings.QUELL_COMMS_FROM_EMAIL or settings.DEFAULT_FROM_EMAIL
    message = EmailMessage(
        subject=mail_subject(subject),
        body=body,
        from_email=from_email,
        to=[from_email] if len(recipients) > 1 else recipients,
        # Several recipients (a stakeholder list) do not see each other's addresses.
        bcc=recipients if len(recipients) > 1 else None,
        headers=headers or {},
        connection=get_connection(timeout=_timeout()),
    )
    try:
        sent = message.send(fail_silently=False)
    except smtplib.SMTPRecipientsRefused as exc:
        raise SendError(f"Recipients refused: {exc.recipients}", transient=False) from None
    except smtplib.SMTPResponseException as exc:
        transient = 400 <= exc.smtp_code < 500
        raise SendError(
            f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", transient=transient, code=exc.smtp_code
        ) from None
    except TimeoutError:
        raise SendError(f"Timed out after {_timeout():g}s", transient=True) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise SendError(f"Mail server error: {exc}", transient=True) from None
    return SendResult(code=250 if sent else None, excerpt=f"accepted for {len(recipients)}")
