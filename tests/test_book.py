"""The book: its table of contents, the notebooks as stored, citations, and the build itself with -W."""

import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from demucs_course.book import (GPU_CHAPTERS, REPO_ROOT, _synced, colab_url, pages_url, repository_ref,
                                 repository_url, setup_cell_source, sync_setup_cells)

CHAPTERS = sorted((REPO_ROOT / "chapters").glob("*.ipynb"))


def toc_files():
    toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        files += [c["file"] for c in part["chapters"]]
    return files


def test_every_chapter_is_in_the_toc_and_every_toc_entry_exists():
    files = toc_files()
    for chapter in CHAPTERS:
        assert f"chapters/{chapter.stem}" in files, f"{chapter.name} is missing from _toc.yml"
    for entry in files:
        assert any((REPO_ROOT / f"{entry}{ext}").is_file() for ext in (".md", ".ipynb")), f"_toc.yml names {entry}"


def test_chapters_are_numbered_and_titled():
    assert len(CHAPTERS) >= 2
    numbers = [int(chapter.name[:2]) for chapter in CHAPTERS]
    assert numbers[0] == 1 and numbers == sorted(set(numbers)), "chapters are NN_name.ipynb, numbered from 01"
    for number, chapter in zip(numbers, CHAPTERS):
        first = json.loads(chapter.read_text())["cells"][0]
        text = "".join(first["source"])
        assert first["cell_type"] == "markdown" and text.startswith(f"# Chapter {number}: "), chapter.name
        assert "You will be able to" in text and "Run time" in text, f"{chapter.name}: objectives and run time"
    # The book numbers the chapters of a numbered part by position: there, position and number must agree, so a
    # chapter after a missing one stands in an unnumbered part until the gap is filled.
    toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text())
    for part in toc["parts"]:
        if part.get("numbered"):
            files = [entry["file"] for entry in part["chapters"]]
            assert files == [f"chapters/{c.stem}" for c in CHAPTERS[:len(files)]], part["caption"]
            assert [int(Path(f).name[:2]) for f in files] == list(range(1, len(files) + 1)), part["caption"]


@pytest.mark.parametrize("notebook", CHAPTERS + sorted((REPO_ROOT / "exercises").glob("*/*.ipynb")),
                         ids=lambda p: p.name)
def test_notebooks_are_stored_without_outputs(notebook):
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] == "code":
            assert not cell["outputs"] and cell["execution_count"] is None, f"{notebook.name}: clear its outputs"


def test_every_notebook_starts_with_the_setup_cell_from_the_one_url():
    assert sync_setup_cells(check=True) == [], "run `python -m demucs_course.book` to rewrite the set-up cells"
    url = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())["repository"]["url"]
    assert repository_url() == url.rstrip("/")
    assert f"COURSE_REPO, COURSE_REF = {json.dumps(url.rstrip('/'))}" in setup_cell_source()
    host_and_name = url.split("://", 1)[-1].rstrip("/")
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.split()
    for name in tracked:
        path = REPO_ROOT / name
        if path.suffix != ".ipynb" and name != "_config.yml" and path.is_file():
            assert host_and_name not in path.read_text(errors="ignore"), f"{name} repeats the repository URL"


def test_each_chapter_opens_its_exercise_in_colab_and_the_gpu_chapters_ask_for_a_gpu():
    for chapter in CHAPTERS:
        nb = json.loads(chapter.read_text())
        text = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
        exercise = next((p for p in (REPO_ROOT / "exercises").iterdir() if p.name[:4] == f"ch{chapter.name[:2]}"), None)
        assert exercise is not None, f"{chapter.name} has no exercise in exercises/"
        target = f"exercises/{exercise.name}/{exercise.name}.ipynb"
        assert f"[open in Colab]({colab_url(target)})" in text, f"{chapter.name}: no Colab link to {target}"
        gpu = nb["metadata"].get("accelerator") == "GPU" and nb["metadata"].get("colab", {}).get("gpuType")
        assert bool(gpu) == (chapter.stem in GPU_CHAPTERS), f"{chapter.name}: Colab runtime"
    assert repository_ref() in colab_url("x.ipynb") and "/github/" in colab_url("x.ipynb")


def test_the_published_book_address_follows_the_repository_url():
    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())
    assert config["html"]["baseurl"] == pages_url(), "set html.baseurl in _config.yml to the GitHub Pages address"
    assert pages_url() in (REPO_ROOT / "README.md").read_text(), "the README links the published book"


def test_sync_writes_the_colab_link_once_and_follows_the_url():
    """Idempotent: a second pass changes nothing; a link written for an old address is rewritten."""
    path = REPO_ROOT / "chapters" / "09_example.ipynb"
    markdown = "## Exercise\n\nOpen `exercises/ch09_x/ch09_x.ipynb` and write it."
    nb = {"cells": [{"cell_type": "markdown", "source": [markdown]},
                    {"cell_type": "code", "source": ["print(1)"], "outputs": [], "execution_count": None}],
          "metadata": {}}
    once = _synced(nb, path, None)
    link = f"Open `exercises/ch09_x/ch09_x.ipynb` ([open in Colab]({colab_url('exercises/ch09_x/ch09_x.ipynb')}))"
    assert "".join(once["cells"][0]["source"]) == markdown.replace("Open `exercises/ch09_x/ch09_x.ipynb`", link)
    assert "".join(once["cells"][1]["source"]) == setup_cell_source()
    assert _synced(once, path, None) == once
    stale = json.loads(json.dumps(once).replace("/blob/", "/blob/old-"))
    assert stale != once and _synced(stale, path, None) == once
    assert once["metadata"] == {}                                   # not a GPU chapter


def test_citations_exist_in_the_bibliography():
    bib = (REPO_ROOT / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    sources = [p for p in CHAPTERS] + list((REPO_ROOT / "book").glob("*.md"))
    for path in sources:
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", path.read_text()):
            for key in group.split(","):
                assert key.strip() in keys, f"{path.name} cites {key.strip()}, which is not in references.bib"


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    """Jupyter Book 1 executes every chapter; -W turns a failing notebook or a broken reference into a failure."""
    out = tmp_path_factory.mktemp("book")
    jupyter_book = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or shutil.which("jupyter-book")
    build = subprocess.run([jupyter_book, "build", str(REPO_ROOT), "-W", "--keep-going", "--path-output", str(out)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-5000:] + build.stderr[-5000:]
    return out / "_build" / "html"


def test_book_builds_with_warnings_as_errors(built_book):
    for chapter in CHAPTERS:
        page = (built_book / "chapters" / f"{chapter.stem}.html").read_text()
        assert "colab.research.google.com" in page, f"{chapter.name}: no Colab launch button"
        assert "Run time" in page and "Summary" in page
    bibliography = (built_book / "book" / "bibliography.html").read_text()
    assert "separation in the waveform domain" in bibliography.lower()  # the style sets titles in lower case
    assert (built_book / "book" / "glossary.html").is_file()


# Injected into a copy of a built page: once the page has loaded, it asks every <audio> element for its duration
# (so the browser must decode the embedded clip) and counts the images that rendered, and writes the result into
# the page, which Chromium then dumps.
PROBE = """<script>
window.addEventListener("load", async () => {
  const durations = await Promise.all([...document.querySelectorAll("audio")].map(a => new Promise(done => {
    a.addEventListener("loadedmetadata", () => done(a.duration));
    a.addEventListener("error", () => done(-1));
    a.preload = "metadata"; a.load();
  })));
  const images = [...document.querySelectorAll("img")].filter(i => i.complete && i.naturalWidth > 0).length;
  const out = document.createElement("pre");
  out.id = "probe"; out.textContent = JSON.stringify({durations, images});
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (or Google Chrome). Without one the browser test is skipped with the reason -- before the
    book is built -- except in CI (``UNMIX_CI`` set, as ``.ci/run`` does), where it is required. Ubuntu's
    ``chromium-browser`` is not tried: it is a wrapper around a snap, which does not run in containers or WSL."""
    found = next(filter(None, map(shutil.which, ("chromium", "google-chrome", "google-chrome-stable"))), None)
    if found is None:
        why = ("no Chromium or Google Chrome for the browser test: `apt-get install chromium` on Debian (course.sh "
               "does it), Google Chrome's deb on Ubuntu")
        if os.environ.get("UNMIX_CI"):
            pytest.fail(why + " (required in CI: UNMIX_CI is set)")
        pytest.skip(why)
    return found


def chromium(browser, *args):
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--mute-audio",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--autoplay-policy=no-user-gesture-required"]
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([browser, *flags, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                              timeout=180)


def test_chapter_one_in_a_browser_plays_audio_and_shows_figures(browser, built_book):
    page = built_book / "chapters" / f"{CHAPTERS[0].stem}.html"
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = chromium(browser, "--virtual-time-budget=20000", "--dump-dom", probe.as_uri()).stdout
    found = re.search(r'<pre id="probe"[^>]*>(.*?)</pre>', dom, re.S)
    assert found, "the probe did not run: " + dom[-2000:]
    result = json.loads(html.unescape(found.group(1)))
    assert len(result["durations"]) >= 5, "chapter 1 must have its stem players"
    assert all(d > 0 for d in result["durations"]), f"an audio clip did not decode: {result['durations']}"
    assert result["images"] >= 3, f"only {result['images']} figures rendered"
    # A screenshot of the page, for a person to look at: _build/screenshots/ in the checkout
    shots = REPO_ROOT / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / f"{CHAPTERS[0].stem}.png"
    chromium(browser, "--window-size=1280,6000", "--hide-scrollbars", f"--screenshot={shot}", page.as_uri())
    assert shot.is_file() and shot.stat().st_size > 50_000
