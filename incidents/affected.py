"""Affected databases on the declare form: a registry the app owning the databases fills.

`incidents` imports no other app (docs/architecture.md), yet its declare form offers the
registered target databases and, when some are chosen, declares through the owner's service so
that each gets a diagnostics run at detection. `diagnostics` registers both callables in its
`AppConfig.ready()`; a system check (incidents.checks) says when what was registered is unusable.
Without a registration the form simply has no database field and declares as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .models import Incident


@dataclass(frozen=True)
class AffectedTargets:
    """How the declare form lists databases and declares with them."""

    # () -> [(id, label)] of the databases a responder may name as affected, by name.
    choices: Callable[[], list[tuple[int, str]]]
    # (*, target_ids, actor, **incident_declare kwargs) -> the new Incident; raises a kernel
    # QuellError (field "affected_targets" for an unknown database) and declares nothing then.
    declare: Callable[..., Incident]


_registered: list[AffectedTargets] = []


def register_affected_targets(provider: AffectedTargets) -> AffectedTargets:
    """Register the provider of affected databases (one app owns them; the last one wins)."""
    _registered[:] = [provider]
    return provider


def affected_targets() -> AffectedTargets | None:
    """The registered provider, or None when no app offers databases."""
    return _registered[0] if _registered else None


def target_choices() -> list[tuple[int, str]]:
    """(id, label) of the databases to offer on the declare form; [] without a provider."""
    provider = affected_targets()
    return list(provider.choices()) if provider else []


def declare_with_targets(*, target_ids: list[int], actor=None, **declare: Any) -> Incident:
    """Declare through the provider (a run at detection on each database)."""
    provider = affected_targets()
    if provider is None:
        raise LookupError("No app has registered affected databases.")
    return provider.declare(target_ids=target_ids, actor=actor, **declare)


def problems() -> list[str]:
    """What is wrong with the registration (for the system check)."""
    provider = affected_targets()
    if provider is None:
        return []
    return [
        f"AffectedTargets.{name} is not callable: {getattr(provider, name)!r}."
        for name in ("choices", "declare")
        if not callable(getattr(provider, name))
    ]
