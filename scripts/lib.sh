# Shared by scripts/run and scripts/test: find Python 3.11+, create and update .venv.
# Sourced, not run. Expects the current directory to be the repository root.

say() { printf '[quell] %s\n' "$*"; }
die() { printf '[quell] %s\n' "$*" >&2; exit 1; }

python_ok() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

# The first Python 3.11+ found: $QUELL_PYTHON, then python3.11, 3.12, 3.13, python3.
find_python() {
    local candidate
    for candidate in "${QUELL_PYTHON:-}" python3.11 python3.12 python3.13 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

# ensure_venv REQUIREMENTS_FILE: .venv exists, runs Python 3.11+, and has the file installed.
# pip runs only when a requirements file changed since the last successful install.
ensure_venv() {
    local requirements="$1" python stamp digest
    if [ -x .venv/bin/python ] && ! python_ok .venv/bin/python; then
        say ".venv does not run Python 3.11+ (its interpreter moved or is too old): recreating it"
        rm -rf .venv
    fi
    if [ ! -x .venv/bin/python ]; then
        python="$(find_python)" || die "Quell needs Python 3.11 or newer: install it (Debian/Ubuntu: apt-get install python3 python3-venv; macOS: brew install python@3.11; or https://www.python.org/downloads/) or set QUELL_PYTHON=/path/to/python3.11"
        say "creating .venv with $("$python" --version 2>&1) ($python)"
        "$python" -m venv .venv >/dev/null \
            || { rm -rf .venv; die "could not create .venv: install the venv module (Debian/Ubuntu: apt-get install python3-venv)"; }
    fi
    stamp=".venv/.quell-$(basename "$requirements").sha256"
    digest="$(cat requirements*.txt | .venv/bin/python -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
    # requirements-dev.txt includes requirements.txt: its stamp covers both.
    if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ] \
        && [ "$(cat .venv/.quell-requirements-dev.txt.sha256 2>/dev/null)" != "$digest" ]; then
        say "installing $requirements into .venv"
        .venv/bin/python -m pip install -q --disable-pip-version-check -r "$requirements" \
            || die "pip install -r $requirements failed (see above): check the network or proxy settings (PIP_INDEX_URL) and run again"
        printf '%s\n' "$digest" > "$stamp"
    fi
}
