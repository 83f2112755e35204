#!/usr/bin/env bash
# The one task entry point; the README and .ci/run both use it.
usage() {
    cat <<'USAGE'
usage: ./run.sh TASK [ARGS]
  build [ARGS]    build seeds/ into feeds/ (config/aggregator.yaml), via `aggregator build`
  test [ARGS]     the whole test suite (pytest; ARGS go to pytest)
  quick [ARGS]    the test suite without the fault suite (-m "not faults"): the local loop
  lint            ruff and mypy --strict
  run [ARGS]      the daemon, `aggregator run` (`./run.sh run --serve`: and the server)
  serve [ARGS]    serve feeds/ at http://localhost:8000/ for feed readers, `aggregator serve`
  bench [ARGS]    the build benchmark (bench/build.py)
  upgrade-check   install the newest versions pyproject.toml allows into .venv-latest and
                  run the tests there (the lock file is left alone)
Each task sets up .venv (Python 3.11+) with the exact versions of requirements.lock and
installs the project first when needed.
USAGE
}
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=.venv

setup() {
    if [ ! -x "$VENV/bin/python" ]; then
        echo "run.sh: creating $VENV (first run)" >&2
        "$PYTHON" -m venv "$VENV"
    fi
    # Reinstall only when the project's metadata or the lock changed since the last install.
    stamp="$VENV/.installed-$(cat pyproject.toml requirements.lock | sha256sum | cut -c1-16)"
    if [ ! -e "$stamp" ]; then
        echo "run.sh: installing the locked dependencies into $VENV (about 20 s)..." >&2
        # The exact versions last tested (requirements.lock), then the project itself without
        # resolving anything again: a fresh clone never picks up a newer library.
        # The log is shown only when the install fails.
        if ! { "$VENV/bin/python" -m pip install --disable-pip-version-check -r requirements.lock \
                && "$VENV/bin/python" -m pip install --disable-pip-version-check --no-deps -e . ; } \
            >"$VENV/install.log" 2>&1; then
            cat "$VENV/install.log" >&2
            exit 1
        fi
        rm -f "$VENV"/.installed-*
        touch "$stamp"
        echo "run.sh: ready" >&2
    fi
}

upgrade_check() {
    # What the next lock would be: the newest versions the ranges in pyproject.toml allow.
    local venv=.venv-latest
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --disable-pip-version-check --upgrade -e '.[dev]'
    "$venv/bin/python" -m pip freeze --exclude-editable > "$venv/requirements.latest"
    diff -u requirements.lock "$venv/requirements.latest" || true
    "$venv/bin/python" -m pytest -q "$@"
    echo "run.sh: tests pass with the newest versions; to adopt them:" \
        "cp $venv/requirements.latest requirements.lock" >&2
}

task=${1:-}
[ $# -gt 0 ] && shift
case "$task" in
    build) setup; exec "$VENV/bin/aggregator" build "$@" ;;
    run) setup; exec "$VENV/bin/aggregator" run "$@" ;;
    serve) setup; exec "$VENV/bin/aggregator" serve "$@" ;;
    test) setup; exec "$VENV/bin/python" -m pytest "$@" ;;
    # The fault suite (kills, full disks, floods) takes most of the time; `test` and CI run it.
    quick) setup; exec "$VENV/bin/python" -m pytest -m "not faults" "$@" ;;
    lint) setup; "$VENV/bin/ruff" check aggregator tests bench; exec "$VENV/bin/mypy" ;;
    bench) setup; exec "$VENV/bin/python" bench/build.py "$@" ;;
    upgrade-check) upgrade_check "$@" ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
esac
