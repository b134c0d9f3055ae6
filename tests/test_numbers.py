"""Every number in the prose is true: measured ones are glued from the run, quoted ones are cited constants.

The rule, for every Markdown cell of every chapter and for the book's own pages (intro, glossary):

- A *figure* is a number with a decimal point or an exponent (``0.253``, ``3e-4``), a number of 1,000 or more
  (``44 100``, ``265,679,496``; years 1900-2099 excepted), a percentage, or a number followed by a unit of
  measure (``5 dB``, ``2 ms``, ``23 min``, ``60 times``, ``7.2 million``).
- A figure is allowed when it is
  1. glued: written as ``{glue}`name``` (myst-nb), so the text shows what the cell computed; or
  2. a setting: the same value is a numeric literal in one of the chapter's own code cells (``steps=200``), and
     its unit is not one that only measurements carry (a percentage, ms, minutes, hours, "times", "million", a
     memory size); or
  3. quoted: one of the cited constants of :mod:`demucs_course.literature`, in a cell (a paragraph, for the book's
     pages) that cites its source with ``{cite}``.
- Not figures: code (inline or fenced), math, MyST roles and directive headers, link targets, and digits inside
  words (``MUSDB18``, ``L1``, ``IRM2``, ``1x1``).

A number the rule flags wrongly is a sign that the sentence wants rewording, or a constant with its source.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from demucs_course.book import REPO_ROOT
from demucs_course.literature import FACTS, _canonical, cited_values

CHAPTERS = sorted((REPO_ROOT / "chapters").glob("*.ipynb"))
PAGES = [REPO_ROOT / "book" / name for name in ("intro.md", "glossary.md")]

UNITS = (r"%|percent|dB|ms|µs|s|sec|seconds?|min|minutes?|h|hours?|days?|Hz|kHz|MB|GB|KB|kB|MiB|GiB|KiB|TB|"
         r"x|×|times|million|billion|thousand|k|M|fps|epochs/s|steps/s")
# Units a setting of the code hardly ever carries: with these, a number must be glued or cited.
MEASURED_UNITS = {"%", "percent", "ms", "µs", "min", "minute", "minutes", "h", "hour", "hours", "day", "days",
                  "x", "×", "times", "million", "billion", "thousand", "MB", "GB", "KB", "kB", "MiB", "GiB",
                  "KiB", "TB", "fps", "epochs/s", "steps/s"}
NUMBER = re.compile(
    r"(?<![\w.\-/#^])"                                     # not inside a word, a path, a version or an anchor
    r"(?P<num>[-−]?(?:\d{1,3}(?:(?:,|\u202f|\u2009| )\d{3})+|\d+)(?:\.\d+)?(?:e[-−]?\d+)?)"
    r"(?P<unit>\s?-?(?:" + UNITS + r")(?![\w]))?"
    r"(?![\w]|\.\d)"
)

STRIP = [
    re.compile(r"```.*?```", re.S),                          # fenced code and directives
    re.compile(r":::.*?\n", re.S),                            # colon-fence directive headers
    re.compile(r"\$\$.*?\$\$", re.S),                         # display math
    re.compile(r"(?<!\\)\$[^$\n]+?\$"),                       # inline math
    re.compile(r"\{[\w:.\-]+\}`[^`]*`"),                      # MyST roles: {glue}`x`, {cite}`y`, {term}`z`
    re.compile(r"`[^`\n]*`"),                                 # inline code
    re.compile(r"\]\([^)]*\)"),                               # link targets
    re.compile(r"<[^>\n]+>"),                                 # HTML tags
    re.compile(r"https?://\S+"),                              # bare URLs
    re.compile(r"^\(.*?\)=\s*$", re.M),                       # MyST targets
]


def prose(text: str) -> str:
    for pattern in STRIP:
        text = pattern.sub(" ", text)
    return text


def figures(text: str) -> list[tuple[str, str]]:
    """The figures of a piece of Markdown: (number as written, unit or '')."""
    found = []
    for match in NUMBER.finditer(prose(text)):
        number, unit = match["num"], (match["unit"] or "").strip(" -")
        plain = _canonical(number).lstrip("-−")
        value = float(plain.replace("−", "-"))
        if "." in plain or "e" in plain or unit:
            found.append((number, unit))
        elif value >= 1000 and not (1900 <= value <= 2099 and plain == number.lstrip("-−")):
            found.append((number, unit))
    return found


def code_literals(cells) -> set[float]:
    """Numeric literals of a notebook's code cells: the settings the prose may repeat."""
    values = set()
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(
                    node.value, bool):
                values.add(float(node.value))
    return values


def unexplained(text: str, settings: set[float], cited: dict[str, set[str]]) -> list[str]:
    cites = set(re.findall(r"\{cite(?::\w+)?\}`([^`]*)`", text))
    cited_keys = {key.strip() for group in cites for key in group.split(",")}
    bad = []
    for number, unit in figures(text):
        plain = _canonical(number).replace("−", "-")
        value = float(plain)
        if (value in settings or abs(value) in settings) and unit not in MEASURED_UNITS:
            continue
        sources = cited.get(plain.lstrip("-"), set())
        if sources & cited_keys:
            continue
        bad.append(f"{number}{' ' + unit if unit else ''}")
    return bad


def glue_names(cells) -> set[str]:
    names = set()
    for cell in cells:
        if cell["cell_type"] == "code":
            names |= set(re.findall(r"glue\(\s*[\"']([^\"']+)[\"']", "".join(cell["source"])))
    return names


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.name)
def test_every_figure_in_a_chapter_is_glued_a_setting_or_cited(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    settings = code_literals(cells)
    cited = cited_values()
    problems = []
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"])
        bad = unexplained(text, settings, cited)
        if bad:
            problems.append(f"cell {cell.get('id')}: {', '.join(bad)}")
    assert not problems, (
        f"{notebook.name}: numbers typed into the prose (glue them from the cell that computes them, or cite "
        "a constant of demucs_course/literature.py):\n  " + "\n  ".join(problems))


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.name)
def test_every_glued_name_is_glued_by_the_chapter(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    defined = glue_names(cells)
    used = set()
    for cell in cells:
        if cell["cell_type"] == "markdown":
            used |= set(re.findall(r"\{glue(?::\w+)?\}`([^`:]+)", "".join(cell["source"])))
    assert used <= defined, f"{notebook.name}: glued in the prose but never computed: {sorted(used - defined)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_figure_on_a_book_page_is_cited(page):
    cited = cited_values()
    problems = []
    for paragraph in re.split(r"\n\s*\n", page.read_text()):
        bad = unexplained(paragraph, set(), cited)
        if bad:
            problems.append(f"{paragraph.strip()[:60]!r}...: {', '.join(bad)}")
    assert not problems, f"{page.name}: numbers without a cited source:\n  " + "\n  ".join(problems)


def test_every_cited_constant_names_a_source_in_the_bibliography():
    bib = (REPO_ROOT / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    for name, fact in FACTS.items():
        assert fact.source in keys, f"literature.FACTS[{name!r}] cites {fact.source}, not in references.bib"
    assert {source for sources in cited_values().values() for source in sources} <= keys


# The rule itself, on sentences it must catch and sentences it must let through.

@pytest.mark.parametrize("sentence", [
    "the GLU model ended ahead (0.253 against 0.280, 9.6 % lower)",
    "an extract costs well under 2 ms",
    "It took 1387 s on 2 cores",
    "the run without the trick is 2.2% ahead",
    "about 60 times fewer extracts per epoch",
    "Demucs v1 scores 5.58 dB",                  # a paper figure without its citation
    "7.2 million values after the first layer",
    "a set of 265,679,496 parameters",
    "44 100 numbers per second",
])
def test_the_lint_flags_typed_figures(sentence):
    assert unexplained(sentence, {2.0}, cited_values()), sentence


@pytest.mark.parametrize("sentence", [
    "Demucs v1 scores 5.58 dB {cite}`defossez2019demucs`",
    "the model scores {glue}`model_sdr` dB, {glue:text}`gain:.1f` above",
    "trained for 200 steps with batch 8",         # settings: literals of the chapter's code
    "MUSDB18 and IRM2 and L1 and a 1x1 convolution, since 2019",
    "`x = 0.253` in code, and $10^{-3}$ in math",
    "depth 6 and 4 sources, 2 channels",
    "see [the docs](https://example.org/v1.2.3/page#4.5)",
])
def test_the_lint_lets_glued_cited_and_setting_numbers_through(sentence):
    assert not unexplained(sentence, {200.0, 8.0}, cited_values()), sentence
