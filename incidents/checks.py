"""System checks of the incidents app (run by `manage.py check`, runserver and migrate)."""

from django.core.checks import Error, register

from .severity import policy_problems


@register()
def severity_policy_check(app_configs=None, **kwargs) -> list[Error]:
    """The severity policy settings are usable: a typo must not silently drop a requirement."""
    return [
        Error(
            problem.message,
            hint="See docs/configuration.md, 'Severity policy'.",
            obj="settings",
            id=problem.check_id,
        )
        for problem in policy_problems()
    ]


@register()
def affected_targets_check(app_configs=None, **kwargs) -> list[Error]:
    """What an app registered for the declare form's affected databases can be called."""
    from .affected import problems

    return [
        Error(message, hint="See docs/architecture.md, 'Who may import whom'.", id="quell.E020")
        for message in problems()
    ]


@register()
def registry_check(app_configs=None, **kwargs) -> list[Error]:
    """What apps registered for the incident pages, filters and /metrics is usable: a missing
    template or field is an error at start-up, not a panel or a filter that vanishes."""
    from . import registry

    hint = "See docs/architecture.md, 'Registries'."
    return [
        *(Error(m, hint=hint, id="quell.E101") for m in registry.panel_problems()),
        *(Error(m, hint=hint, id="quell.E102") for m in registry.target_problems()),
        *(Error(m, hint=hint, id="quell.E103") for m in registry.other_problems()),
    ]
