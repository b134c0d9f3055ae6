#!/usr/bin/env bash
# Unmix: the course's two commands (see README.md).
#
#   bash course.sh book    install everything (ffmpeg, the Python packages in .venv) and build the HTML book,
#                          every chapter executed:  _build/html/index.html
#   bash course.sh test    install if needed, then run every test: unit tests, every chapter under nbval,
#                          the exercise and solution checks, and the book build with -W.
#                          Extra arguments go to pytest, e.g.  bash course.sh test tests/test_data.py -x
set -euo pipefail
cd "$(dirname "$0")"

VENV="${UNMIX_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

say() { printf '\033[1m[unmix]\033[0m %s\n' "$*"; }

system_packages() {
    local need=()
    command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
    # the sampled multitrack set: FluidSynth renders General MIDI with the FluidR3 GM soundfont
    command -v fluidsynth >/dev/null 2>&1 || need+=(fluidsynth)
    [ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || need+=(fluid-soundfont-gm)
    # the browser test opens built pages in headless Chromium
    if [ "${1:-}" = test ]; then command -v chromium >/dev/null 2>&1 || need+=(chromium); fi
    "$PYTHON" -c "import venv, ensurepip" >/dev/null 2>&1 || need+=(python3-venv)
    if [ ${#need[@]} -gt 0 ]; then
        say "installing system packages: ${need[*]}"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
    fi
}

python_packages() {
    "$PYTHON" - <<'PY' || { say "Python 3.10 or newer is needed (set PYTHON=python3.11)"; exit 1; }
import sys; sys.exit(sys.version_info < (3, 10))
PY
    local stamp="$VENV/.unmix-installed"
    if [ ! -f "$stamp" ] || [ requirements.txt -nt "$stamp" ] || [ requirements-nodeps.txt -nt "$stamp" ] ||
       [ pyproject.toml -nt "$stamp" ]; then
        say "installing Python packages into $VENV"
        "$PYTHON" -m venv "$VENV"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements.txt -e .
        # reference packages for the tests, without the dependencies they declare (see the file)
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
        touch "$stamp"
    fi
}

install() {
    local start=$SECONDS
    system_packages "${1:-}"
    python_packages
    say "set-up done in $((SECONDS - start)) s"
}

case "${1:-}" in
    book)
        install
        start=$SECONDS
        "$VENV/bin/jupyter-book" build . -W --keep-going
        say "book built in $((SECONDS - start)) s: open _build/html/index.html"
        ;;
    test)
        install test
        shift
        start=$SECONDS
        "$VENV/bin/python" -m pytest "$@"
        say "tests done in $((SECONDS - start)) s"
        ;;
    *)
        echo "usage: bash course.sh book | bash course.sh test [pytest arguments]" >&2
        exit 2
        ;;
esac
