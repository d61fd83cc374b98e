"""Secret scrubbing: credentials never reach a message, a log line or a page."""

MASK = "********"
# Shorter values would mask ordinary words ("a", "pg"): a secret that short is refused elsewhere.
MIN_SECRET_LENGTH = 3


def scrub(text, secrets=()) -> str:
    """`text` with every secret in `secrets` replaced by MASK."""
    text = str(text or "")
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, MASK)
    return text
