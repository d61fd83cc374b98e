"""docs/configuration.md stays the complete, true reference of what Quell reads from the
environment: every variable the settings and scripts read, with its literal default, and every
periodic task with its task and interval.

The settings and scripts are read with `ast` (no importing, no regexes on code), so a variable
behind a condition (`if QUELL_MONITOR_INTERVAL_S > 0:`) counts as much as any other. The
shell scripts are not Python: their `$QUELL_*` references are found with a regular expression.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "configuration.md"
SETTINGS_DIR = ROOT / "config" / "settings"
SCRIPTS_DIR = ROOT / "scripts"
# Application code that may read the environment directly (outside the settings).
APP_DIRS = ["config", "incidents", "diagnostics", "comms", "postmortems"]

ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
SHELL_QUELL_VAR = re.compile(r"\$\{?(QUELL_[A-Z0-9_]+)")
DOC_NAME = re.compile(r"`([A-Z][A-Z0-9_]+)`")
DOC_ENTRY = re.compile(r"^`([a-z0-9]+(?:-[a-z0-9]+)+)`$")

# Literal defaults that are never in effect, so the page rightly does not show them.
UNUSED_DEFAULTS = {
    # base.py's False is overridden by every environment: dev reads DJANGO_DEBUG with its own
    # default, test and production hard-code DEBUG = False.
    ("base.py", "DJANGO_DEBUG"),
    # base.py's "" is overridden by dev, test (own defaults) and production (required).
    ("base.py", "DJANGO_SECRET_KEY"),
    # base.py's [] is replaced by a key derived from the secret key (dev, test) or required
    # (production).
    ("base.py", "QUELL_FERNET_KEYS"),
    # dev.py's [] (no key in the environment or the secrets file) is replaced by a derived key.
    ("dev.py", "QUELL_FERNET_KEYS"),
    # The page says "a fixed, insecure key" rather than print the throwaway keys.
    ("dev.py", "DJANGO_SECRET_KEY"),
    ("test.py", "DJANGO_SECRET_KEY"),
}


@dataclass(frozen=True)
class EnvRead:
    name: str
    file: str
    line: int
    default: ast.expr | None  # the `default=` expression, None when the variable is required


def _is_env_call(node: ast.AST) -> bool:
    """`env(...)`, `env.int(...)`, `env.list(...)` ... (django-environ's Env instance)."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Name):
        return func.id == "env"
    return (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and (func.value.id == "env")
    )


def settings_env_reads() -> list[EnvRead]:
    """Every `env…("NAME", …)` call in config/settings/*.py."""
    reads = []
    for path in sorted(SETTINGS_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not _is_env_call(node):
                continue
            assert node.args and isinstance(node.args[0], ast.Constant), (
                f"{path.name}:{node.lineno}: env read with a name that is not a string literal; "
                "this test (and a reader) cannot tell which variable it is"
            )
            default = next((kw.value for kw in node.keywords if kw.arg == "default"), None)
            reads.append(EnvRead(node.args[0].value, path.name, node.lineno, default))
    return reads


def _environ_reads(tree: ast.AST, *, any_get: bool) -> set[str]:
    """Names read through os.environ[...], os.environ.get/setdefault(...), os.getenv(...);
    with any_get, also any `<mapping>.get("NAME")` (scripts pass os.environ around as `env`)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and _is_os_environ(node.value):
            key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                names.add(key.value)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            first = node.args[0]
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue
            attr, owner = node.func.attr, node.func.value
            from_os_environ = attr in ("get", "setdefault", "pop") and _is_os_environ(owner)
            from_getenv = attr == "getenv" and isinstance(owner, ast.Name) and owner.id == "os"
            from_mapping = any_get and attr == "get"
            if from_os_environ or from_getenv or from_mapping:
                names.add(first.value)
    return {name for name in names if ENV_NAME.match(name)}


def _is_os_environ(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def script_env_names() -> set[str]:
    """Variables scripts/ reads: its Python through `ast`, its shell through `$QUELL_*`."""
    names = set()
    for path in sorted(SCRIPTS_DIR.iterdir()):
        if path.suffix == ".py":
            names |= _environ_reads(ast.parse(path.read_text(), filename=str(path)), any_get=True)
        elif path.is_file():
            names |= set(SHELL_QUELL_VAR.findall(path.read_text()))
    return names


def app_env_names() -> set[str]:
    """Variables application code reads straight from os.environ (outside the settings)."""
    names = set()
    for directory in APP_DIRS:
        for path in sorted((ROOT / directory).rglob("*.py")):
            if SETTINGS_DIR in path.parents:
                continue
            names |= _environ_reads(ast.parse(path.read_text(), filename=str(path)), any_get=False)
    return names


def doc_rows() -> list[list[str]]:
    """The cells of every table row of docs/configuration.md (header and rule rows too)."""
    rows = []
    for line in DOC.read_text().splitlines():
        if line.startswith("|") and line.endswith("|"):
            rows.append([cell.strip() for cell in line[1:-1].split(" | ")])
    return rows


def documented_names() -> dict[str, list[str]]:
    """Variable name -> the first table row whose first cell names it."""
    found: dict[str, list[str]] = {}
    for row in doc_rows():
        for name in DOC_NAME.findall(row[0]):
            found.setdefault(name, row)
    return found


def _literal_spellings(value) -> list[str]:
    """How the page may write a literal default (inside backticks, or 'empty')."""
    if isinstance(value, bool):
        return [f"`{str(value).lower()}`"]
    if isinstance(value, (int, float)):
        spellings = [f"`{value}`"]
        if isinstance(value, float) and value.is_integer():
            spellings.append(f"`{int(value)}`")
        return spellings
    if isinstance(value, str):
        return [f"`{value}`"] if value else ["empty"]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return [f"`{','.join(value)}`"] if value else ["empty"]
    return []  # JSON objects and computed defaults are described in words


def _constant(node: ast.expr):
    """The value of a default made of literals and arithmetic; raises ValueError otherwise."""
    for sub in ast.walk(node):
        if isinstance(sub, (ast.Name, ast.Call, ast.Attribute, ast.Subscript)):
            raise ValueError("not a constant")
    return eval(compile(ast.Expression(node), "<default>", "eval"), {"__builtins__": {}})  # noqa: S307 - literals and arithmetic only, checked above


def beat_schedule_entries() -> dict[str, ast.Dict]:
    """`CELERY_BEAT_SCHEDULE["name"] = {...}` assignments in config/settings/*.py."""
    entries = {}
    for path in sorted(SETTINGS_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.Assign):
                continue
            for target in node.targets:
                if (
                    isinstance(target, ast.Subscript)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "CELERY_BEAT_SCHEDULE"
                ):
                    assert isinstance(target.slice, ast.Constant), f"{path.name}:{node.lineno}"
                    assert isinstance(node.value, ast.Dict), f"{path.name}:{node.lineno}"
                    entries[target.slice.value] = node.value
    return entries


def _interval_spellings(seconds: float) -> list[str]:
    seconds = int(seconds)
    spellings = [f"{seconds} s"]
    if seconds % 60 == 0:
        spellings.append(f"{seconds // 60} min")
    if seconds % 3600 == 0:
        spellings.append(f"{seconds // 3600} h")
    return spellings


def test_every_settings_variable_has_a_row_in_the_configuration_doc():
    reads = settings_env_reads()
    assert len({read.name for read in reads}) > 50, "the settings parser found too little"
    documented = documented_names()
    missing = sorted(
        {f"{read.name} ({read.file}:{read.line})" for read in reads if read.name not in documented}
    )
    assert not missing, f"read by the settings but not documented in {DOC.name}: {missing}"


def test_every_script_variable_has_a_row_in_the_configuration_doc():
    names = script_env_names() | app_env_names()
    # The parser must see what the scripts are known to read, or this test proves nothing.
    assert {"QUELL_PORT", "QUELL_EMBEDDED", "QUELL_PYTHON", "QUELL_ADMIN_PASSWORD"} <= names
    missing = sorted(names - set(documented_names()))
    assert not missing, f"read by scripts/ or app code but not documented in {DOC.name}: {missing}"


def test_every_documented_variable_is_read_somewhere():
    # A variable that nothing reads any more is a lie on the page: remove its row.
    read = {r.name for r in settings_env_reads()} | script_env_names() | app_env_names()
    stale = sorted(set(documented_names()) - read)
    assert not stale, f"documented in {DOC.name} but read nowhere: {stale}"


def test_literal_defaults_match_the_configuration_doc():
    documented = documented_names()
    wrong = []
    for read in settings_env_reads():
        if read.default is None or (read.file, read.name) in UNUSED_DEFAULTS:
            continue
        try:
            value = _constant(read.default)
        except ValueError:
            continue  # computed from another setting: described in words
        spellings = _literal_spellings(value)
        row = documented.get(read.name)
        if spellings and row and not any(s in " | ".join(row[1:]) for s in spellings):
            wrong.append(f"{read.name} ({read.file}:{read.line}): default {value!r}")
    assert not wrong, f"defaults that {DOC.name} does not show: {wrong}"


def test_required_production_variables_are_marked_required():
    text = DOC.read_text()
    required_section = text.split("## Required in production", 1)[1].split("\n## ", 1)[0]
    required = sorted(
        read.name
        for read in settings_env_reads()
        if read.file == "production.py" and read.default is None
    )
    assert required == ["DJANGO_ALLOWED_HOSTS", "DJANGO_SECRET_KEY", "QUELL_FERNET_KEYS"]
    for name in required:
        assert f"`{name}`" in required_section, name


def test_every_periodic_task_is_documented_with_its_task_interval_and_setting():
    entries = beat_schedule_entries()
    assert len(entries) >= 10, "the schedule parser found too little"
    rows = {DOC_ENTRY.match(row[0]).group(1): row for row in doc_rows() if DOC_ENTRY.match(row[0])}
    problems = []
    for name, entry in entries.items():
        row = rows.get(name)
        if row is None:
            problems.append(f"{name}: no row")
            continue
        fields = {key.value: value for key, value in zip(entry.keys, entry.values, strict=True)}
        task = fields["task"].value
        if f"`{task}`" not in row[1]:
            problems.append(f"{name}: task {task} not in {row[1]!r}")
        schedule = fields["schedule"]
        controlling = None
        if _is_env_call(schedule):
            controlling = schedule.args[0].value
            default = next(kw.value for kw in schedule.keywords if kw.arg == "default")
            seconds = _constant(default)
        elif isinstance(schedule, ast.Name):
            # A setting read from the variable of the same name (e.g. QUELL_MONITOR_INTERVAL_S).
            controlling = schedule.id
            seconds = next(
                _constant(read.default) for read in settings_env_reads() if read.name == controlling
            )
        else:
            seconds = _constant(schedule)
        if not any(spelling in row[2] for spelling in _interval_spellings(seconds)):
            problems.append(f"{name}: interval {seconds} s not in {row[2]!r}")
        if controlling and f"`{controlling}`" not in row[3]:
            problems.append(f"{name}: {controlling} not in {row[3]!r}")
        if not controlling and "fixed" not in row[3]:
            problems.append(f"{name}: a fixed interval, but {row[3]!r} does not say so")
    extra = sorted(set(rows) - set(entries))
    assert not problems and not extra, f"periodic tasks: {problems}; documented, unknown: {extra}"


def test_the_parsed_beat_schedule_is_the_one_django_loads():
    # The AST view above must agree with what the settings actually produce (test settings:
    # every entry, the built-in monitor included).
    from django.conf import settings

    assert set(settings.CELERY_BEAT_SCHEDULE) == set(beat_schedule_entries())
