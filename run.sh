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
                  run the tests there (the lock files are left alone)
Each task sets up .venv (Python 3.11+) with exact versions and installs the project first
when needed: build, run and serve the runtime lock (requirements-runtime.lock), test, lint
and bench the dev lock (requirements.lock, a superset), added to the same .venv.
USAGE
}
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=.venv

RUNTIME_LOCK=requirements-runtime.lock
DEV_LOCK=requirements.lock

# install WHAT STAMP PIP-ARGS...: pip PIP-ARGS into $VENV unless $VENV/.WHAT-STAMP exists, then
# record it (dropping the stamps of earlier versions of WHAT). The log shows only on failure.
install() {
    local what=$1 stamp=$2
    shift 2
    [ -e "$VENV/.$what-$stamp" ] && return 0
    echo "run.sh: $INSTALLING" >&2
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check "$@" \
            >"$VENV/install.log" 2>&1; then
        cat "$VENV/install.log" >&2
        exit 1
    fi
    rm -f "$VENV/.$what-"* "$VENV"/.installed-*  # .installed-*: the stamps of run.sh before
    touch "$VENV/.$what-$stamp"
    INSTALLED=1
}

hash_of() { cat "$@" | sha256sum | cut -c1-16; }
pins() { grep -c "==" "$1"; }

# setup runtime|dev: one .venv, a stamp per lock and one for the project, so that `test` after
# `build` only adds the dev packages, and nothing is installed twice. The exact versions last
# tested, then the project itself without resolving anything again: a fresh clone never picks
# up a newer library.
setup() {
    if [ ! -x "$VENV/bin/python" ]; then
        echo "run.sh: creating $VENV (first run; about 5 s)" >&2
        "$PYTHON" -m venv "$VENV"
    fi
    INSTALLED=
    local runtime
    runtime=$(hash_of "$RUNTIME_LOCK")
    if [ "$1" = dev ]; then
        # Both locks at once: a runtime pin that disagrees with the dev lock fails here. What
        # `build` installed already is kept, so after it only the dev packages are added.
        if [ -e "$VENV/.runtime-lock-$runtime" ]; then
            INSTALLING="adding the rest of the dev lock ($DEV_LOCK) to $VENV (about 20 s"
        else
            INSTALLING="installing the dev lock ($DEV_LOCK, $(pins "$DEV_LOCK") packages)"
            INSTALLING+=" into $VENV (about 25 s"
        fi
        INSTALLING+="; longer if pip must download)..."
        install dev-lock "$(hash_of "$DEV_LOCK" "$RUNTIME_LOCK")" -r "$DEV_LOCK" -r "$RUNTIME_LOCK"
        if [ ! -e "$VENV/.runtime-lock-$runtime" ]; then  # the runtime lock came with it
            rm -f "$VENV"/.runtime-lock-*
            touch "$VENV/.runtime-lock-$runtime"
        fi
    else
        INSTALLING="installing the runtime lock ($RUNTIME_LOCK, $(pins "$RUNTIME_LOCK") packages)"
        INSTALLING+=" into $VENV (about 10 s; longer if pip must download)..."
        install runtime-lock "$runtime" -r "$RUNTIME_LOCK"
    fi
    INSTALLING="installing the project into $VENV (about 5 s)..."
    install project "$(hash_of pyproject.toml)" --no-deps -e .
    if [ -n "$INSTALLED" ]; then echo "run.sh: ready" >&2; fi
}

upgrade_check() {
    # What the next lock would be: the newest versions the ranges in pyproject.toml allow.
    local venv=.venv-latest
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --disable-pip-version-check --upgrade -e '.[dev]'
    "$venv/bin/python" -m pip freeze --exclude-editable > "$venv/requirements.latest"
    diff -u "$DEV_LOCK" "$venv/requirements.latest" || true
    "$venv/bin/python" tests/locks.py "$venv/requirements.latest" > "$venv/requirements-runtime.latest"
    diff -u "$RUNTIME_LOCK" "$venv/requirements-runtime.latest" || true
    "$venv/bin/python" -m pytest -q "$@"
    echo "run.sh: tests pass with the newest versions; to adopt them:" \
        "cp $venv/requirements.latest $DEV_LOCK &&" \
        "cp $venv/requirements-runtime.latest $RUNTIME_LOCK" >&2
}

task=${1:-}
[ $# -gt 0 ] && shift
case "$task" in
    build) setup runtime; exec "$VENV/bin/aggregator" build "$@" ;;
    run) setup runtime; exec "$VENV/bin/aggregator" run "$@" ;;
    serve) setup runtime; exec "$VENV/bin/aggregator" serve "$@" ;;
    test) setup dev; exec "$VENV/bin/python" -m pytest "$@" ;;
    # The fault suite (kills, full disks, floods) takes most of the time; `test` and CI run it.
    quick) setup dev; exec "$VENV/bin/python" -m pytest -m "not faults" "$@" ;;
    lint) setup dev; "$VENV/bin/ruff" check aggregator tests bench; exec "$VENV/bin/mypy" ;;
    bench) setup dev; exec "$VENV/bin/python" bench/build.py "$@" ;;
    upgrade-check) upgrade_check "$@" ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
esac
