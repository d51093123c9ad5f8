#!/usr/bin/env bash
# Speech emotion recognition with Emotion2Vec+.
#
#   ./run.sh [APP OPTIONS]       start the web app (creates .venv and fetches the model if missing)
#   ./run.sh test [PYTEST ARGS]  run the test suite (creates .venv with the test packages); with
#                                arguments, just what they select, in one process
#   ./run.sh download [NAME]     download a model into models/NAME (default emotion2vec_plus_large)
#   ./run.sh cli ARGS...         the command line (the emotion command) inside .venv; paths are
#                                taken from the folder you run it in, as with any command
#   ./run.sh --help              this text, and the app's options
#
# Environment: EMOTION_MODEL_DIR (model folder), GRADIO_SERVER_NAME / GRADIO_SERVER_PORT
# (default 127.0.0.1:7860), PYTHON (interpreter used to create .venv, default python3); the
# README's Settings table lists the rest.
set -euo pipefail
CALLER_DIR="$PWD"  # the command line's paths (files, --output-dir, --model-dir) are the caller's
cd "$(dirname "$0")"
VENV=.venv
PY="$PWD/$VENV/bin/python"

ensure_env() {  # ensure_env REQUIREMENT_FILES...: (re)install only when they or pyproject.toml changed
    local stamp
    stamp="$VENV/.installed-$(cat "$@" pyproject.toml | sha256sum | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        if [ ! -x "$PY" ]; then
            "${PYTHON:-python3}" -m venv "$VENV"
        fi
        echo "Installing $* into $VENV (first run: a few minutes)..." >&2
        local args=()
        for f in "$@"; do args+=(-r "$f"); done
        "$PY" -m pip install --quiet --disable-pip-version-check "${args[@]}" >&2
        # the project itself, editable: the `emotion` command, and `import emotion` from anywhere
        "$PY" -m pip install --quiet --disable-pip-version-check --no-deps -e . >&2
        touch "$stamp"
    fi
}

threads() {  # use every core for the matrix products
    local n
    n=$(nproc 2>/dev/null || echo 4)
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$n}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-$n}"
}

export GRADIO_ANALYTICS_ENABLED=False PYTHONUNBUFFERED=1

case "${1:-}" in
    -h|--help)
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"  # the header above
        if [ -x "$PY" ]; then echo; "$PY" app.py --help; fi
        ;;
    test)
        shift
        ensure_env requirements.txt requirements-test.txt
        if [ -f tests/browser_setup.sh ]; then bash tests/browser_setup.sh; fi
        if [ $# -gt 0 ]; then  # a part of the suite, as asked: one process
            threads
            exec "$PY" -m pytest -q "$@"
        fi
        # The whole suite in two passes: most tests on two workers, one thread each (much of their
        # time is spent waiting on servers, browsers and child processes); then, alone on the
        # machine, the tests marked `serial`, which measure latency, timeouts or memory.
        workers=$(nproc 2>/dev/null || echo 2)
        [ "$workers" -ge 2 ] || workers=2
        rc=0
        # the random-weight test checkpoints, made once for both passes (tests/conftest.py)
        EMOTION_TEST_MODELS=$(mktemp -d "${TMPDIR:-/tmp}/emotion-test-models.XXXXXX")
        export EMOTION_TEST_MODELS
        trap 'rm -rf "$EMOTION_TEST_MODELS"' EXIT
        OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 "$PY" -m pytest -q -n "$workers" --dist loadfile -m "not serial" || rc=$?
        threads
        # collecting only the files that mark tests `serial` saves importing the rest a second time
        # shellcheck disable=SC2046
        "$PY" -m pytest -q -m serial $(grep -l "mark\.serial" tests/test_*.py) || rc=$((rc ? rc : $?))
        exit "$rc"
        ;;
    download)
        shift
        ensure_env requirements.txt
        cd "$CALLER_DIR"
        exec "$PY" -m emotion download "$@"
        ;;
    cli)
        shift
        ensure_env requirements.txt
        threads
        cd "$CALLER_DIR"
        exec "$PY" -m emotion "$@"
        ;;
    *)
        ensure_env requirements.txt
        threads
        exec "$PY" app.py "$@"
        ;;
esac
