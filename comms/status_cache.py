"""The public status page, rendered once and served from cache.

The page, its JSON and its Atom feed are rendered from the database on a miss and stored in
the shared cache (Redis in production) for QUELL_STATUS_PAGE_CACHE_SECONDS; publishing an
external update or changing a component deletes them (`invalidate`), so readers see a change
at once. Each process also keeps the bytes in memory for QUELL_STATUS_PAGE_LOCAL_SECONDS (a
second by default): under a burst of traffic most requests then cost neither the database nor
Redis, and another process sees an invalidation at most that long after it happened.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import threading
import time

from django.conf import settings
from django.core.cache import caches
from django.core.serializers.json import DjangoJSONEncoder
from django.template.loader import render_to_string
from django.utils import feedgenerator

from config.validators import without_control_characters

from .selectors import status_page_snapshot

logger = logging.getLogger(__name__)

KINDS = ("html", "json", "atom")
CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "json": "application/json",
    "atom": "application/atom+xml; charset=utf-8",
}
_KEY = "comms:status:v3:{kind}"

_local: dict[str, tuple[float, tuple[bytes, bytes, str]]] = {}
_local_lock = threading.Lock()


def _cache():
    """The cache holding the rendered page."""
    return caches[settings.QUELL_STATUS_PAGE_CACHE_ALIAS]


def _abs(path: str) -> str:
    """An absolute URL on QUELL_BASE_URL."""
    return settings.QUELL_BASE_URL.rstrip("/") + path


def render(kind: str, snapshot: dict | None = None) -> bytes:
    """Render one representation of the status page from the database."""
    snapshot = snapshot if snapshot is not None else status_page_snapshot()
    if kind == "html":
        return render_to_string("comms/status_page.html", {"page": snapshot}).encode()
    if kind == "json":
        return json.dumps(_json_view(snapshot), cls=DjangoJSONEncoder).encode()
    if kind == "atom":
        return _atom(snapshot)
    raise ValueError(kind)


def _json_view(snapshot: dict) -> dict:
    """The JSON document."""
    return {
        "page": {
            "name": snapshot["name"],
            "url": _abs("/status/"),
            "updated_at": snapshot["generated_at"],
        },
        "status": snapshot["overall"],
        "components": snapshot["components"],
        "incidents": [_json_incident(i) for i in snapshot["current"]],
        "history": [_json_incident(i) for i in snapshot["history"]],
        "history_days": snapshot["history_days"],
    }


def _json_incident(item: dict) -> dict:
    """One incident in the JSON document."""
    return {
        "id": item["id"],
        "title": item["title"],
        "status": item["status"],
        "impact": item["impact"],
        "started_at": item["started_at"],
        "updated_at": item["updated_at"],
        "resolved_at": item["resolved_at"],
        "update_overdue": bool(item["overdue"]),
        "updates": [
            {
                "id": u["id"],
                "status": u["status"],
                "body": u["body"],
                "published_at": u["published_at"],
            }
            for u in item["updates"]
        ],
    }


class _PlainTextAtomFeed(feedgenerator.Atom1Feed):
    """Atom whose summaries are `type="text"`: update bodies are plain text, never markup."""

    def add_item_elements(self, handler, item):
        summary = item.get("description")
        super().add_item_elements(handler, {**item, "description": None})
        if summary is not None:
            handler.addQuickElement("summary", summary, {"type": "text"})


def _atom(snapshot: dict) -> bytes:
    """The Atom feed: one entry per external update, newest first.

    Text is cleaned of control characters XML cannot carry, so an update stored before they were
    refused cannot make the feed fail for every reader.
    """
    clean = without_control_characters
    feed = _PlainTextAtomFeed(
        title=clean(f"{snapshot['name']} status"),
        link=_abs("/status/"),
        description=f"Incident updates for {snapshot['name']}",
        feed_url=_abs("/status/feed.atom"),
        language="en",
        feed_guid=_abs("/status/feed.atom"),
    )
    entries = []
    for item in [*snapshot["current"], *snapshot["history"]]:
        for upd in item["updates"]:
            entries.append((item, upd))
    entries.sort(key=lambda pair: pair[1]["published_at"], reverse=True)
    for item, upd in entries[:100]:
        feed.add_item(
            title=clean(f"{item['title']}: {upd['status_label']}"),
            link=_abs(f"/status/#incident-{item['id']}"),
            description=clean(upd["body"]),
            unique_id=_abs(f"/status/#update-{upd['id']}"),
            pubdate=upd["published_at"],
            updateddate=upd["published_at"],
        )
    return feed.writeString("utf-8").encode()


def _entry(kind: str) -> tuple[bytes, bytes, str]:
    """(raw, gzip, etag) of one representation, freshly rendered from the database."""
    raw = render(kind)
    # Compressed once per render, not per request: browsers always accept gzip.
    etag = hashlib.sha256(raw).hexdigest()[:24]
    return raw, gzip.compress(raw, compresslevel=6, mtime=0), etag


def get(kind: str) -> tuple[bytes, bytes, str]:
    """The cached (raw, gzip, etag) of one representation, rendered and stored on a miss."""
    local_ttl = float(settings.QUELL_STATUS_PAGE_LOCAL_SECONDS)
    now = time.monotonic()
    if local_ttl > 0:
        hit = _local.get(kind)
        if hit is not None and hit[0] > now:
            return hit[1]
    key = _KEY.format(kind=kind)
    cache = _cache()
    try:
        entry = cache.get(key)
    except Exception:
        # The cache is down: the page still works, from the database (slower, but up).
        logger.exception("status page cache unavailable")
        return _entry(kind)
    if entry is None:
        entry = _entry(kind)
        try:
            cache.set(key, entry, timeout=settings.QUELL_STATUS_PAGE_CACHE_SECONDS)
        except Exception:
            logger.exception("status page cache unavailable")
            return entry
    if local_ttl > 0:
        with _local_lock:
            _local[kind] = (now + local_ttl, entry)
    return entry


def invalidate() -> None:
    """Forget every rendered representation (called after publish and component changes)."""
    with _local_lock:
        _local.clear()
    try:
        _cache().delete_many([_KEY.format(kind=k) for k in KINDS])
    except Exception:
        # Never fail the publish that called this; the entries expire on their own.
        logger.exception("could not invalidate the status page cache")
