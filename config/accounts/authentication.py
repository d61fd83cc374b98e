"""API token authentication: `Authorization: Token <secret>`, looked up by its SHA-256 digest.

One SQL statement reads the token, its user and the user's groups (handed to
incidents.permissions, so the permission check needs no second query) and notes when the token
was last used, at most once a minute so a busy client does not write on every request.
Expired and revoked tokens are refused with 401 like unknown ones. Failed attempts count
against the "anon" throttle rate per client address: DRF checks permissions before throttles,
so a request with a bad token would otherwise never be throttled, and guessing could go on
without limit. Past the rate the answer is 429 with Retry-After.
"""

from functools import cache

from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from config.kernel.permissions import remember_groups
from config.kernel.sql import fetch_instances, model_columns

from . import ratelimit
from .client_ip import client_ip
from .models import ApiToken
from .services import token_digest

# A data-modifying CTE runs exactly once whether or not the outer query reads it.
_SQL = """
WITH tok AS (
    SELECT id, user_id, name, prefix, created_at, expires_at, revoked_at, last_used_at
    FROM {token} WHERE digest = %s
), touched AS (
    UPDATE {token} SET last_used_at = now()
    WHERE id = (SELECT id FROM tok) AND revoked_at IS NULL
      AND (expires_at IS NULL OR expires_at > now())
      AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds')
    RETURNING id
)
SELECT {user_columns}, tok.id AS token_id, tok.name AS token_name, tok.prefix AS token_prefix,
       tok.created_at AS token_created_at, tok.expires_at AS token_expires_at,
       tok.revoked_at AS token_revoked_at, (tok.expires_at <= now()) AS token_expired,
       ARRAY(SELECT g.name FROM {group} g JOIN {user_groups} ug ON ug.group_id = g.id
             WHERE ug.user_id = u.id) AS token_group_names
FROM tok JOIN {user} u ON u.id = tok.user_id
"""
# The columns after the user's own, in the statement's order.
_TOKEN_COLUMNS = (
    "token_id",
    "token_name",
    "token_prefix",
    "token_created_at",
    "token_expires_at",
    "token_revoked_at",
    "token_expired",
    "token_group_names",
)


@cache
def _statement() -> str:
    user_model = get_user_model()
    groups = user_model._meta.get_field("groups")
    return _SQL.format(
        group=groups.related_model._meta.db_table,
        user_groups=groups.remote_field.through._meta.db_table,
        token=ApiToken._meta.db_table,
        user=user_model._meta.db_table,
        user_columns=model_columns(user_model, "u"),
    )


class QuellTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <secret>` (DRF's header and errors), against hashed tokens."""

    model = ApiToken

    def authenticate(self, request):
        self._request = request
        return super().authenticate(request)

    def _refuse(self, message):
        request = getattr(self, "_request", None)
        rate = api_settings.DEFAULT_THROTTLE_RATES.get("anon")
        if request is not None and rate:
            limit, window_s = SimpleRateThrottle.parse_rate(None, rate)
            wait = ratelimit.hit(
                "api-token-failures", client_ip(request), limit=limit, window_s=window_s
            )
            if wait is not None:
                raise exceptions.Throttled(wait=wait)
        raise exceptions.AuthenticationFailed(message)

    def authenticate_credentials(self, key):
        # Table names come from model metadata and the digest is a bound parameter. Every API
        # request runs this statement: prepared on the server (config.kernel.sql).
        users = fetch_instances(
            get_user_model(), _statement(), [token_digest(key)], extras=_TOKEN_COLUMNS
        )
        if not users:
            self._refuse(_("Invalid token."))
        user = users[0]
        if user.token_revoked_at is not None:
            self._refuse(_("Invalid token."))
        if user.token_expired:
            self._refuse(_("Token expired."))
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        remember_groups(user, user.token_group_names)
        token = ApiToken(
            id=user.token_id,
            user=user,
            name=user.token_name,
            prefix=user.token_prefix,
            created_at=user.token_created_at,
            expires_at=user.token_expires_at,
        )
        token._state.adding = False
        return (user, token)
