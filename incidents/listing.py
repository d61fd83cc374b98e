"""The incident list's "open first, then newest first" order, paginated without sorting the table.

Sorting by a CASE expression (open or not) makes PostgreSQL read and sort every matching row
to find one page: with 100,000 incidents that is most of the page's time. Open incidents are
few, so the list is two index-ordered queries instead: the open ones (status index), then the
others (declared_at index), and a page takes its rows from one or both. Django's Paginator
drives it through count() and slicing.
"""

from __future__ import annotations

from django.db.models import QuerySet

from .models import OPEN_STATUSES

ORDER = ("-declared_at", "-id")

# Counting every match of a common word means reading most of the table; beyond this many the
# list says "N+" and asks for a narrower search instead of counting further.
SEARCH_COUNT_CAP = 1000


class OpenFirst:
    """A sliceable, countable sequence: open incidents newest first, then the rest."""

    def __init__(self, qs: QuerySet, *, count_cap: int | None = None):
        self.base_qs = qs
        self.open_qs = qs.filter(status__in=OPEN_STATUSES).order_by(*ORDER)
        self.rest_qs = qs.exclude(status__in=OPEN_STATUSES).order_by(*ORDER)
        self.count_cap = count_cap
        self._open_count: int | None = None
        self._count: int | None = None
        self._ids: list[int] | None = None
        self.capped = False

    def open_count(self) -> int:
        if self._open_count is None:
            self._open_count = self.open_qs.count()
        return self._open_count

    def _capped_ids(self) -> list[int]:
        # One pass per part for both the count and the page: the ids of at most cap + 1
        # matches, in list order (a text search reads the table; do it once, not twice).
        if self._ids is None:
            limit = self.count_cap + 1
            ids = list(self.open_qs.values_list("pk", flat=True)[:limit])
            if len(ids) < limit:
                ids += list(self.rest_qs.values_list("pk", flat=True)[: limit - len(ids)])
            self.capped = len(ids) > self.count_cap
            self._ids = ids[: self.count_cap]
        return self._ids

    def count(self) -> int:
        if self._count is None:
            if self.count_cap is None:
                self._count = self.open_count() + self.rest_qs.count()
            else:
                self._count = len(self._capped_ids())
        return self._count

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, item):
        if not isinstance(item, slice):
            return self[item : item + 1][0]
        start, stop = item.start or 0, item.stop
        if self.count_cap is not None:
            ids = self._capped_ids()[start:stop]
            rows = {row.pk: row for row in self.base_qs.filter(pk__in=ids)}
            return [rows[pk] for pk in ids if pk in rows]
        open_n = self.open_count()
        rows = []
        if start < open_n:
            rows += list(self.open_qs[start : min(stop, open_n)])
        if stop > open_n:
            rows += list(self.rest_qs[max(start - open_n, 0) : stop - open_n])
        return rows
