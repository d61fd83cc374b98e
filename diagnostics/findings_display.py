"""Findings as people read them: labelled columns with units, the blocking tree, fix offers.

Checks store findings as JSON rows with machine keys (`xact_age_s`, `blocked_by`, `holds`); the
pages show them through these helpers, so no page prints a key or a Python repr. Pure
functions over stored rows: nothing here reads a database.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import Any

from django.template.defaultfilters import filesizeformat

from .checks.util import human_seconds

# Labels for the keys checks use; any other key is shown as its words, capitalised.
LABELS = {
    "pid": "PID",
    "user": "User",
    "database": "Database",
    "application_name": "Application",
    "client_addr": "Client",
    "state": "State",
    "backend_type": "Backend",
    "wait_event_type": "Wait type",
    "wait_event": "Wait event",
    "query": "Query",
    "query_text": "Query",
    "backend_start": "Session started",
    "xact_start": "Transaction started",
    "query_start": "Query started",
    "state_change": "State since",
    "xact_age_s": "Transaction open",
    "state_age_s": "In this state",
    "duration_s": "Running for",
    "idle_s": "Idle for",
    "wait_s": "Waiting for",
    "role": "Role in chain",
    "blocked_by": "Waits on (PID)",
    "root_blockers": "Root blocker (PID)",
    "blocking": "Blocks (PID)",
    "blocking_count": "Blocks",
    "holds": "Holds",
    "depth": "Depth",
    "writer": "Write",
    "mode": "Lock mode",
    "lock_type": "Lock type",
    "relation": "Relation",
    "transactionid": "Transaction id",
    "over_threshold": "Past threshold",
    "worst": "Worst",
    "backend_xmin": "Oldest xmin",
    "scope": "Scope",
    "calls": "Calls",
    "mean_ms": "Mean",
    "total_ms": "Total",
    "max_ms": "Max",
    "latency_ms": "Latency",
    "connect_ms": "Connect time",
    "uptime_s": "Uptime",
    "size_bytes": "Size",
    "bytes": "Size",
    "dead_pct": "Dead rows",
    "percent": "Percent",
}
ROLE_WORDS = {"blocked": "waiting", "root_blocker": "root blocker"}
TIME_KEYS = {"backend_start", "xact_start", "query_start", "state_change"}
QUERY_KEYS = {"query", "query_text"}
QUERY_EXCERPT = 600
# Columns a reader does not need in the table (they are used by the tree and the fix offers).
HIDDEN_COLUMNS = {"worst", "over_threshold"}
# Detail that crowds a table out of the page: the durations beside them say the same as the
# start times, the backend type and wait class add little; the API keeps every field.
SECONDARY_COLUMNS = {
    "backend_type",
    "wait_event_type",
    "xact_start",
    "query_start",
    "state_change",
    "backend_start",
    "transactionid",
    "lock_type",
    "backend_xmin",
    "client_addr",
    "state_age_s",
    "depth",
    "blocking_count",
    # A blocking chain's tree shows these: who is at the root, and the summary counts writers.
    "root_blockers",
    "writer",
}
# Shown only when rows differ in them (one database, one scope: said once by the page).
CONSTANT_HIDDEN = {"database", "scope"}
# The columns a responder reads first, in this order; the others follow as the check gave them.
FIRST_COLUMNS = (
    "pid",
    "role",
    "application_name",
    "user",
    "state",
    "duration_s",
    "idle_s",
    "wait_s",
    "xact_age_s",
    "mode",
    "relation",
    "blocked_by",
    "root_blockers",
    "blocking_count",
    "blocking",
    "holds",
)
ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:?\d{2}|Z)?$")


def label(key: str) -> str:
    """A column's label: known keys by name, others as their words."""
    if key in LABELS:
        return LABELS[key]
    words = key.replace("_", " ").strip()
    for suffix, unit in ((" s", ""), (" ms", ""), (" pct", " (%)"), (" bytes", "")):
        if words.endswith(suffix):
            words = words[: -len(suffix)] + unit
    return words[:1].upper() + words[1:]


def _time(value: str) -> str:
    try:
        moment = datetime.datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _item(value: Any) -> str:
    if isinstance(value, dict):
        if "mode" in value and "relation" in value:
            return f"{value['mode']} on {value['relation'] or '(no relation)'}"
        return ", ".join(f"{label(str(k)).lower()} {_item(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_item(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return "" if value is None else str(value)


def cell(key: str, value: Any) -> str:
    """One value as text with its unit: durations, sizes, times, lists and pairs."""
    if value is None or value == "":
        return ""
    if key == "role":
        return ROLE_WORDS.get(str(value), str(value).replace("_", " "))
    if isinstance(value, str) and (key in QUERY_KEYS or key.endswith("_query")):
        # One line per query in a table: its indentation and line breaks only make rows tall
        # (the API keeps the text as stored).
        text = " ".join(value.split())
        return text if len(text) <= QUERY_EXCERPT else text[: QUERY_EXCERPT - 1] + "…"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in TIME_KEYS or (isinstance(value, str) and ISO_TIME.match(value)):
        return _time(value)
    if isinstance(value, int | float):
        if key.endswith("_s"):
            return human_seconds(value)
        if key.endswith("_ms"):
            return f"{value:,.1f} ms".replace(".0 ms", " ms")
        if key.endswith("bytes"):
            return filesizeformat(value)
        if key.endswith("_pct") or key in ("percent", "pct"):
            return f"{value:.1f} %"
    return _item(value)


def columns(rows: list[dict]) -> list[str]:
    """The keys a table shows: the first-read ones first, then the others in first-seen order;
    without the ones only the page logic uses, the secondary details and empty columns."""
    dicts = [r for r in rows or [] if isinstance(r, dict)]
    keys: list[str] = []
    for row in dicts:
        keys += [k for k in row if k not in keys]
    keys = [k for k in keys if k not in HIDDEN_COLUMNS and k not in SECONDARY_COLUMNS]
    keys = [k for k in keys if k not in CONSTANT_HIDDEN or len({str(r.get(k)) for r in dicts}) > 1]
    # A column empty on every row says nothing.
    keys = [k for k in keys if any(cell(k, r.get(k)) for r in dicts)]
    first = [k for k in FIRST_COLUMNS if k in keys]
    rest = [k for k in keys if k not in first]
    # Query texts last: the widest column, and the one read after who and how long.
    return first + [k for k in rest if k not in QUERY_KEYS] + [k for k in rest if k in QUERY_KEYS]


# --- The blocking tree -------------------------------------------------------------------


@dataclass
class Node:
    """One session in a blocking tree: the root, or one waiting on its parent."""

    pid: int
    row: dict
    children: list[Node] = field(default_factory=list)
    also_waits_on: list[int] = field(default_factory=list)

    @property
    def wait(self) -> str:
        seconds = self.row.get("wait_s")
        return human_seconds(seconds) if seconds is not None else ""

    @property
    def count(self) -> int:
        """Sessions waiting below this one (the whole subtree)."""
        return sum(1 + c.count for c in self.children)


def blocking_tree(findings: list[dict]) -> list[Node]:
    """Roots (most blocked first), each with who waits on it directly, then on those, ...

    A session waiting on two others is drawn under the first and names the others, so every
    session appears once and a cycle (a deadlock about to be broken) cannot loop.
    """
    rows = [r for r in findings or [] if isinstance(r, dict) and r.get("pid") is not None]
    by_pid = {r["pid"]: r for r in rows}
    roots = [r for r in rows if r.get("role") == "root_blocker"]
    waiting_on: dict[int, list[dict]] = {}
    for r in rows:
        if r.get("role") == "blocked":
            for blocker in r.get("blocked_by") or []:
                waiting_on.setdefault(blocker, []).append(r)
    placed: set[int] = set()

    def grow(node: Node) -> Node:
        for child in sorted(waiting_on.get(node.pid, []), key=lambda r: -(r.get("wait_s") or 0)):
            if child["pid"] in placed:
                continue
            placed.add(child["pid"])
            others = [p for p in child.get("blocked_by") or [] if p != node.pid]
            node.children.append(grow(Node(child["pid"], child, also_waits_on=others)))
        return node

    trees = []
    for root in sorted(roots, key=lambda r: (-(r.get("blocking_count") or 0), r["pid"])):
        placed.add(root["pid"])
        trees.append(grow(Node(root["pid"], by_pid[root["pid"]])))
    return trees


# --- From a finding to its fix --------------------------------------------------------------

FIXABLE = {"blocking_locks", "long_running_queries", "idle_in_transaction"}
IDLE_STATES = ("idle in transaction", "idle in transaction (aborted)")


def fix_offers(key: str, row: dict) -> list[dict]:
    """The remediation a finding row offers: terminate the session, cancel its query.

    Root blockers of a blocking chain, long-running queries past the threshold and sessions idle
    in transaction past it. A cancel does nothing to an idle session, so there it is offered
    disabled, with the reason.
    """
    if key not in FIXABLE or not isinstance(row, dict) or row.get("pid") is None:
        return []
    if key == "blocking_locks" and row.get("role") != "root_blocker":
        return []
    if key != "blocking_locks" and not row.get("over_threshold", True):
        return []
    if row.get("scope") == "other_database":
        return []
    pid = row["pid"]
    blocks = row.get("blocking_count")
    if key == "blocking_locks":
        terminate = f"Terminate root blocker {pid} (blocks {blocks})"
    else:
        terminate = f"Terminate session {pid}"
    idle = row.get("state") in IDLE_STATES
    return [
        {"kind": "terminate", "label": terminate, "disabled": ""},
        {
            "kind": "cancel",
            "label": "Cancel its query",
            "disabled": "idle in transaction: there is no query to cancel; terminate it"
            if idle
            else "",
        },
    ]


# --- Compares ------------------------------------------------------------------------------


def changed_table(pairs: list[dict]) -> dict:
    """Rows present in both runs whose values changed: per cell the value after, and the one
    before when it differs (so the page can mark it)."""
    rows = [p["after"] for p in pairs] + [p["before"] for p in pairs]
    keys = columns(rows)
    table = []
    for pair in pairs:
        before, after = pair["before"], pair["after"]
        table.append(
            [
                {
                    "key": k,
                    "after": cell(k, after.get(k)),
                    "before": cell(k, before.get(k)),
                    "changed": cell(k, after.get(k)) != cell(k, before.get(k)),
                }
                for k in keys
            ]
        )
    return {"columns": keys, "rows": table}


def metric_label(name: str) -> str:
    """A counter's dotted name (`by_state.active`) as words ("By state: active")."""
    parts = [label(p) for p in name.split(".")]
    return ": ".join([parts[0], *(p.lower() for p in parts[1:])])


def metric_value(name: str, value) -> str:
    """A counter's value with the unit its name implies."""
    return cell(name.rsplit(".", 1)[-1], value) if value is not None else "-"
