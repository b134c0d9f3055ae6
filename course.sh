#!/usr/bin/env bash
# Unmix: the course's commands (see README.md). Debian 12/13 or Ubuntu 22.04/24.04, Python 3.11 or newer.
#
#   bash course.sh book      install everything (ffmpeg, the Python packages in .venv) and build the HTML book,
#                            every chapter executed:  _build/html/index.html
#   bash course.sh test      install if needed, then run every test: unit tests, every chapter under nbval,
#                            the exercise and solution checks, and the book build with -W.
#                            Extra arguments go to pytest, e.g.  bash course.sh test tests/test_data.py -x
#   bash course.sh lab       install if needed, then open JupyterLab on the chapters
#   bash course.sh publish   build the book and publish _build/html to the repository's GitHub Pages (ghp-import)
#
# Settings, from the environment:
#   PYTHON=python3.12                 the Python to build .venv with (default: the newest python3.1x found, 3.11+)
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
#                                     an extra index for torch: the CPU build, where pip would otherwise fetch the
#                                     multi-GB CUDA build (any machine whose pip does not already find CPU wheels)
#   UNMIX_VENV=DIR                    the virtual environment (default .venv)
#   UNMIX_CI=1                        CI: the browser test is required (elsewhere it is skipped without Chromium)
#   UNMIX_PUBLISH_REMOTE=origin       the git remote that publish pushes the gh-pages branch to
set -euo pipefail
cd "$(dirname "$0")"

VENV="${UNMIX_VENV:-.venv}"
PYTHON="${PYTHON:-}"

say() { printf '\033[1m[unmix]\033[0m %s\n' "$*"; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=""
apt_install() {   # apt_install PACKAGE...: install Debian/Ubuntu packages; fails if apt-get does
    if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

python_ok() { command -v "$1" >/dev/null 2>&1 && "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

pick_python() {   # PYTHON: the one given, else python3 if it is 3.11+, else the newest python3.1x on the PATH
    if [ -n "$PYTHON" ]; then
        python_ok "$PYTHON" || { say "PYTHON=$PYTHON is not Python 3.11 or newer"; exit 2; }
        return
    fi
    local candidate
    for candidate in python3 python3.14 python3.13 python3.12 python3.11; do
        if python_ok "$candidate"; then PYTHON="$candidate"; return; fi
    done
    # Ubuntu 22.04's python3 is 3.10: its archive has python3.11 beside it
    if [ -f /etc/os-release ] && grep -q '^VERSION_ID="22.04"' /etc/os-release; then
        say "python3 is older than 3.11: installing python3.11 beside it"
        apt_install python3.11 python3.11-venv
        PYTHON=python3.11
        return
    fi
    say "Python 3.11 or newer is needed: install it, then run again with PYTHON=python3.11 (or newer)"
    exit 2
}

venv_works() {    # whether $PYTHON can create a virtual environment with pip (Debian ships that separately)
    local probe
    probe="$(mktemp -d)"
    "$PYTHON" -m venv "$probe/venv" >/dev/null 2>&1 && [ -x "$probe/venv/bin/pip" ]
    local ok=$?
    rm -rf "$probe"
    return $ok
}

find_browser() { command -v chromium || command -v google-chrome || command -v google-chrome-stable; } >/dev/null 2>&1

system_packages() {
    local need=()
    command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
    # the sampled multitrack set: FluidSynth renders General MIDI with the FluidR3 GM soundfont
    command -v fluidsynth >/dev/null 2>&1 || need+=(fluidsynth)
    [ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || need+=(fluid-soundfont-gm)
    command -v git >/dev/null 2>&1 || need+=(git)
    if [ ! -x "$VENV/bin/python" ] && ! venv_works; then
        need+=("$("$PYTHON" -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}-venv")')")
    fi
    if [ ${#need[@]} -gt 0 ]; then
        say "installing system packages: ${need[*]}"
        apt_install "${need[@]}"
    fi
    if [ "${1:-}" = test ]; then browser; fi
}

browser() {   # the browser tests: built pages in headless Chromium; the web app through chromedriver (selenium)
    find_browser && command -v chromedriver >/dev/null 2>&1 && return 0
    local reason
    if grep -qs '^ID=ubuntu' /etc/os-release; then
        # Ubuntu's chromium-browser deb only installs a snap, which does not run in containers or WSL
        reason="Ubuntu has no Chromium deb (its chromium-browser is a snap); install Google Chrome's deb and its chromedriver to run them"
    else
        say "installing Chromium and chromedriver for the browser tests"
        apt_install chromium chromium-driver && find_browser && return 0
        reason="apt-get install chromium chromium-driver failed"
    fi
    if [ -n "${UNMIX_CI:-}" ]; then
        say "Chromium and chromedriver are required in CI (UNMIX_CI is set): $reason"
        exit 1
    fi
    say "no Chromium or chromedriver: the browser tests will be skipped ($reason)"
}

python_packages() {
    local stamp="$VENV/.unmix-installed"
    if [ ! -f "$stamp" ] || [ requirements.txt -nt "$stamp" ] || [ requirements-nodeps.txt -nt "$stamp" ] ||
       [ pyproject.toml -nt "$stamp" ]; then
        say "installing Python packages into $VENV with $PYTHON"
        [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
        local torch_index=()
        [ -z "${TORCH_INDEX_URL:-}" ] || torch_index=(--extra-index-url "$TORCH_INDEX_URL")
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${torch_index[@]}" -r requirements.txt -e .
        # reference packages for the tests, without the dependencies they declare (see the file)
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
        touch "$stamp"
    fi
}

install() {
    local start=$SECONDS
    if [ -x "$VENV/bin/python" ]; then
        PYTHON="${PYTHON:-$VENV/bin/python}"
    else
        pick_python
    fi
    system_packages "${1:-}"
    python_packages
    say "set-up done in $((SECONDS - start)) s"
}

publish() {   # the release checklist is in book/instructors.md
    local url ref remote="${UNMIX_PUBLISH_REMOTE:-origin}"
    read -r url ref < <("$VENV/bin/python" -c \
        "from demucs_course.book import repository_url, repository_ref; print(repository_url(), repository_ref())")
    if ! "$VENV/bin/python" -m demucs_course.book --check; then
        say "the notebooks do not follow _config.yml: run  $VENV/bin/python -m demucs_course.book  and commit"
        exit 1
    fi
    if ! GIT_TERMINAL_PROMPT=0 git ls-remote --exit-code "$url" "$ref" >/dev/null; then
        say "$url has no branch or tag $ref, or cannot be reached: the notebooks' set-up cells would fail"
        say "(repository.url and repository.branch in _config.yml; push the branch or tag first)"
        exit 1
    fi
    local start=$SECONDS
    "$VENV/bin/jupyter-book" build . -W --keep-going
    "$VENV/bin/ghp-import" --no-jekyll --push --force --remote "$remote" --message "Publish the book from $ref" \
        _build/html
    say "published in $((SECONDS - start)) s: the gh-pages branch of $remote"
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
    lab)
        install
        shift
        as_root_flag=()
        [ "$(id -u)" -ne 0 ] || as_root_flag=(--allow-root)   # a container, WSL or Colab-like machine
        exec "$VENV/bin/jupyter-lab" "${as_root_flag[@]}" chapters/ "$@"
        ;;
    publish)
        install
        publish
        ;;
    *)
        echo "usage: bash course.sh book | test [pytest arguments] | lab [jupyter-lab arguments] | publish" >&2
        exit 2
        ;;
esac
