"""Error pages: under /api/ a URL that matches no route answers JSON like every other API error.

A path the URL map cannot match (an id that is not a number, a negative one) otherwise gets the
HTML 404 page, which an API client cannot read and the schema does not declare.
"""

from django.http import JsonResponse
from django.views import defaults


def not_found(request, exception):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return defaults.page_not_found(request, exception)
