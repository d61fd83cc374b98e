"""factory_boy factories shared by every app's tests."""

import factory
from django.contrib.auth.models import Group, User
from django.utils import timezone

from incidents.models import Incident, Kind
from incidents.severity import Severity


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests")

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        """UserFactory(role="responder") puts the user in that access group."""
        if create and extracted:
            self.groups.add(Group.objects.get(name=extracted))
        if create:
            self.save()


class IncidentFactory(factory.django.DjangoModelFactory):
    """A bare incident row; use incidents.services.incident_declare to get its events too."""

    class Meta:
        model = Incident

    title = factory.Sequence(lambda n: f"Database issue {n}")
    slug = factory.LazyAttribute(lambda o: o.title.lower().replace(" ", "-")[:60])
    severity = Severity.SEV3
    kind = Kind.PERFORMANCE
    detected_at = factory.LazyFunction(timezone.now)
    declared_at = factory.LazyFunction(timezone.now)
    channel_name = factory.Sequence(lambda n: f"#incident-2026-01-01-issue-{n}")


def api_token_for(user, name: str = "test") -> str:
    """Issue an API token for `user` and return its secret (the only time it exists)."""
    from config.accounts.services import token_issue

    return token_issue(user=user, name=name)[1]


def fresh_client_ip() -> str:
    """A client address no earlier test (or test run) used, so rate limits counted in the
    shared cache start from zero (documentation range 2001:db8::/32)."""
    import ipaddress
    import secrets

    return str(ipaddress.IPv6Address(0x20010DB8 << 96 | secrets.randbits(96)))
