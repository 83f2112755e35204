#!/usr/bin/env bash
# The one task entry point; the README and .ci/run both use it.
#   ./run.sh build [ARGS]   build seeds/ into feeds/ (config/aggregator.yaml), via `aggregator build`
#   ./run.sh test [ARGS]    the whole test suite (pytest)
#   ./run.sh lint           ruff and mypy --strict
#   ./run.sh run [ARGS]     the daemon, `aggregator run`
#   ./run.sh bench [ARGS]   the build benchmark (bench/build.py)
# Each sets up .venv (Python 3.11+) and installs the project first when needed.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=.venv

setup() {
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV"
    fi
    # Reinstall only when the project's metadata changed since the last install.
    stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
    if [ ! -e "$stamp" ]; then
        # The log is shown only when the install fails: a working set-up stays quiet.
        if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -e '.[dev]' \
            >"$VENV/install.log" 2>&1; then
            cat "$VENV/install.log" >&2
            exit 1
        fi
        rm -f "$VENV"/.installed-*
        touch "$stamp"
    fi
}

task=${1:-}
[ $# -gt 0 ] && shift
case "$task" in
    build) setup; exec "$VENV/bin/aggregator" build "$@" ;;
    run) setup; exec "$VENV/bin/aggregator" run "$@" ;;
    test) setup; exec "$VENV/bin/python" -m pytest "$@" ;;
    lint) setup; "$VENV/bin/ruff" check aggregator tests bench; exec "$VENV/bin/mypy" ;;
    bench) setup; exec "$VENV/bin/python" bench/build.py "$@" ;;
    *) echo "usage: ./run.sh build|test|lint|run|bench [ARGS]" >&2; exit 2 ;;
esac
