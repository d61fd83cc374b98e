"""The check registry: plugins (and tests) add checks and take them away by key."""

import pytest

from diagnostics.checks.base import CheckRegistry
from tests.diagnostics.d2_fixtures import CounterCheck


def test_unregister_removes_a_check_and_returns_it():
    local = CheckRegistry()
    local.register(CounterCheck)
    assert local.unregister(CounterCheck.key) is CounterCheck
    assert local.all() == []
    assert local.unregister(CounterCheck.key) is None  # already gone: nothing to remove
    local.register(CounterCheck)  # and the key is free again
    assert local.all() == [CounterCheck]


def test_duplicate_keys_are_refused():
    local = CheckRegistry()
    local.register(CounterCheck)
    with pytest.raises(ValueError, match="Duplicate"):
        local.register(CounterCheck)
