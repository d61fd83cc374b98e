"""How every Quell list endpoint pages, and which query parameters it takes.

A list answers 50 rows a page; `page_size` asks for 1 to 200 (anything else is a 400, never
silently replaced), `page` is a page number from 1 (a 400 otherwise; a page past the end is a
404 that says how many there are). A query parameter the list does not know (a typo such as
`severty`) is a 400 naming it, not a silently unfiltered list: the list knows its FilterSet's
filters, `ordering`/`search` when it has those backends, and what the view declares in
`query_parameters`.
"""

from django.core.paginator import InvalidPage
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination

# Taken by every endpoint: DRF's format override.
ALWAYS = frozenset({"format"})


def known_query_parameters(view) -> set[str]:
    """The query parameters a list view reads."""
    known = set(ALWAYS) | set(getattr(view, "query_parameters", ()))
    filterset_class = getattr(view, "filterset_class", None)
    if filterset_class is not None:
        known |= set(filterset_class.base_filters)
    known |= set(getattr(view, "filterset_fields", None) or ())
    for backend in getattr(view, "filter_backends", ()):
        for attribute in ("ordering_param", "search_param"):
            param = getattr(backend, attribute, None)
            if isinstance(param, str):
                known.add(param)
    return known


def refuse_unknown_parameters(request, view, known: set[str]) -> None:
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise ValidationError(
            {
                name: [f"Unknown query parameter; this list takes: {', '.join(sorted(known))}."]
                for name in unknown
            }
        )


class StandardPagination(PageNumberPagination):
    """50 a page by default; `page_size` asks for 1 to 200."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        size = int(raw) if raw.isdigit() else 0
        if not 1 <= size <= self.max_page_size:
            raise ValidationError(
                {self.page_size_query_param: [f"A number from 1 to {self.max_page_size}."]}
            )
        return size

    def paginate_queryset(self, queryset, request, view=None):
        if view is not None:
            known = known_query_parameters(view) | {
                self.page_query_param,
                self.page_size_query_param,
            }
            refuse_unknown_parameters(request, view, known)
        page_size = self.get_page_size(request)
        raw = request.query_params.get(self.page_query_param)
        if raw is not None and (not raw.isdigit() or int(raw) < 1):
            raise ValidationError({self.page_query_param: ["A page number: 1 or more."]})
        paginator = self.django_paginator_class(queryset, page_size)
        number = int(raw) if raw else 1
        try:
            self.page = paginator.page(number)
        except InvalidPage:
            raise NotFound(
                f"There is no page {number}: this list has {paginator.num_pages} "
                f"page{'s' if paginator.num_pages != 1 else ''} of {page_size}."
            ) from None
        if paginator.num_pages > 1 and self.template is not None:
            self.display_page_controls = True
        self.request = request
        return list(self.page)


def paginated(request, view, items, serialize=None):
    """A page of `items` (a queryset or a list) as the answer of `view`, rows turned into JSON by
    `serialize(page)` when given: for views that are not list views of their own (an APIView,
    or a GenericAPIView with other methods). The view sets `pagination_class =
    StandardPagination`, which also tells the schema the answer is a page."""
    paginator = (getattr(view, "pagination_class", None) or StandardPagination)()
    page = paginator.paginate_queryset(items, request, view=view)
    return paginator.get_paginated_response(serialize(page) if serialize else page)
