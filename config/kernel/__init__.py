"""Quell's kernel: what every app shares, importing no app (docs/architecture.md).

errors       the domain exception hierarchy (QuellError, NotFound, Conflict, PermissionDenied)
api          the DRF exception handler mapping those errors to HTTP answers (one table)
openapi      the error responses drf-spectacular declares on every view
permissions  access levels (groups) and the DRF permission classes built on them
pagination   the page size every list endpoint uses
headers      Location on creates, ETag / If-None-Match / If-Match on details and writes
admin        admin pieces every app uses (read-only inline)
actors       who acted: a user, or nobody (system, anonymous)
secrets      secret scrubbing with one mask
"""
