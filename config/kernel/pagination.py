"""The page size every Quell list endpoint uses."""

from rest_framework.pagination import PageNumberPagination


class StandardPagination(PageNumberPagination):
    """50 a page by default; `page_size` asks for up to 200."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
