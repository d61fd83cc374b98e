"""API token authentication that reads the token, its user and the user's groups in one query.

DRF's TokenAuthentication loads the token with its user (an ORM query built and compiled on
every request), and the permission check then reads the user's groups in a second query. Every
API request pays both, so this reads all three with one constant SQL statement and hands the
groups to incidents.permissions. Behaviour is DRF's: same header, same errors.
"""

from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from .permissions import remember_groups

_SQL = """
SELECT u.*, t.created AS token_created,
       ARRAY(SELECT g.name FROM {group} g JOIN {user_groups} ug ON ug.group_id = g.id
             WHERE ug.user_id = u.id) AS token_group_names
FROM {token} t JOIN {user} u ON u.id = t.user_id
WHERE t.key = %s
"""


class QuellTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, as DRF's, in one query instead of two."""

    def authenticate_credentials(self, key):
        token_model = self.get_model()
        user_model = get_user_model()
        groups = user_model._meta.get_field("groups")
        sql = _SQL.format(
            group=groups.related_model._meta.db_table,
            user_groups=groups.remote_field.through._meta.db_table,
            token=token_model._meta.db_table,
            user=user_model._meta.db_table,
        )
        # Table names come from model metadata and the key is a bound parameter.
        users = list(user_model.objects.raw(sql, [key]))
        if not users:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user = users[0]
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        remember_groups(user, user.token_group_names)
        token = token_model(key=key, user=user, created=user.token_created)
        token._state.adding = False
        return (user, token)
