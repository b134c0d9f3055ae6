"""Chapter 7: the shipped model's records -- its scores, measured, and the tables the READMEs show, generated.

``demucs_toy.pt`` beside this file is the model, ``demucs_toy.json`` its record (how it was made, on which toy set,
and what it scores), ``README.md`` the same for people. The scores are measured by :func:`score_toy_test` with the
package's own functions, and every figure the READMEs quote is written from the json by :func:`update_readmes`
between two marker comments, so a record cannot drift from the measurement; ``tests/test_pretrained.py`` measures
again and checks both.

    python -m demucs_course.pretrained.records            # re-score on the toy test set, rewrite json and READMEs
    python -m demucs_course.pretrained.records --check    # exit 1 if a README differs from the json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from pathlib import Path

from demucs_course import SOURCES

HERE = Path(__file__).resolve().parent
#: The model's record.
RECORD = HERE / "demucs_toy.json"
#: The READMEs that quote the record: this folder's (the score table) and the repository's (a summary).
README = HERE / "README.md"
TOP_README = HERE.parent.parent / "README.md"

#: The rows of the score table: key in the json's ``test_sdr_db`` -> label in the README.
ROWS = {
    "mixture": "the mixture as every estimate",
    "best scaled mixture": "best scaled mixture (no separation)",
    "shipped model": "**this model**",
    "IRM oracle": "IRM oracle",
}
COLUMNS = SOURCES + ("mean",)
#: How the scores are measured (stored in the json beside them).
SCORING = ("median SDR (BSS-eval v4, evaluate.median_sdr): median over 1-s windows per track, then over the toy test "
           "tracks, in dB; the model separates each track whole, without the shift trick (separate_track)")


def score_toy_test(model, tracks=None) -> dict[str, dict[str, float]]:
    """The median SDR, in dB to 2 decimals, on the toy test set of ``model`` and the three references of ``ROWS``.

    ``model`` separates each whole track in one pass (``separate_track``, no shift trick); the references are the
    mixture itself as every source, the best scaled mixture (least-squares gain, no separation) and the IRM oracle.
    ``tracks`` defaults to ``load_tracks("toy", "test")``.
    """
    from demucs_course.data import load_tracks
    from demucs_course.oracles import best_scaled_mixture, irm
    from demucs_course.separate import separate_track
    from demucs_course.evaluate import median_sdr

    tracks = load_tracks("toy", "test") if tracks is None else tracks
    estimators = {
        "mixture": lambda t: t.mixture()[None].expand(len(SOURCES), -1, -1),
        "best scaled mixture": lambda t: best_scaled_mixture(t.sources(), t.mixture()),
        "shipped model": lambda t: separate_track(model, t.mixture()),
        "IRM oracle": lambda t: irm(t.sources(), t.mixture()),
    }
    return {row: {name: round(value, 2) for name, value in median_sdr(tracks, estimate).items()}
            for row, estimate in estimators.items()}


def score_table(scores: dict[str, dict[str, float]]) -> str:
    """The Markdown table of ``scores`` (the json's ``test_sdr_db``), the model's row in bold."""
    lines = ["| | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for row, label in ROWS.items():
        cells = [f"{scores[row][name]:.2f}" for name in COLUMNS]
        if row == "shipped model":
            cells = [f"**{cell}**" for cell in cells]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def margins(scores: dict[str, dict[str, float]]) -> tuple[float, float]:
    """How far the model is above the best scaled mixture: on the mean, and on its weakest source (dB)."""
    model, floor = scores["shipped model"], scores["best scaled mixture"]
    return model["mean"] - floor["mean"], min(model[name] - floor[name] for name in SOURCES)


def record_block(info: dict) -> str:
    """The generated part of this folder's README that says what the model is and how it was made."""
    config, arguments = info["config"], info["toy_arguments"]
    model = ", ".join(f"{key}={value}" for key, value in config["model"].items())
    call = ", ".join(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
                     for key, value in arguments.items())
    trained_on = (f"content SHA-256 `{info['toy_content_sha256']}`" if info.get("toy_content_sha256")
                  else "content not recorded")
    best = next(e for e in info["validation_history"] if e["epoch"] == info["best_epoch"])
    rows = {
        "model": f"`Demucs({model})` (the `TINY` settings), {info['parameters']:,} parameters",
        "file": f"{info['bytes'] / 1024:.0f} KiB: float16 weights (restored to float32 when loaded), the training "
                f"config and history; SHA-256 `{info['sha256']}`",
        "data": f"the default toy set, `TOY_VERSION` {info['toy_version']}, `make_toy_musdb({call})` ({trained_on}): "
                f"{arguments['n_train'] - arguments['n_valid']} training tracks, {arguments['n_valid']} validation "
                f"tracks",
        "training": f"the `{info['preset']}` preset: {config['segment']:g}-s extracts with a {config['stride']:g}-s "
                    f"stride, Shift {config['shift']:g} s, batch {config['batch_size']}, {config['loss'].upper()} "
                    f"loss, Adam at {config['lr']:g}, {config['epochs']} epochs ({info['steps']:,} steps), seed "
                    f"{config['seed']}",
        "best epoch": f"{info['best_epoch']} of {config['epochs']}, validation {config['loss'].upper()} "
                      f"{best['valid']:.4f} (normalised scale)",
        "time": f"{info['training_seconds']:.0f} s ({info['training_seconds'] / 60:.0f} min) wall, "
                f"{info['training_cpu_seconds']:.0f} s of CPU time, on {info['machine']}",
    }
    table = "\n".join(["| | |", "|---|---|"] + [f"| {key} | {value} |" for key, value in rows.items()])
    return (f"{table}\n\nIt was made by this repository's own command, then exported to float16:\n\n"
            f"```\n{info['command']}\n{info['export']}\n```")


def readme_block(info: dict) -> str:
    """The generated part of this folder's README: the score table and what it says."""
    scores = info["test_sdr_db"]
    mean_gain, worst_gain = margins(scores)
    scored = info["scored_on"]
    return _wrap(f"Scored on the toy set version {scored['toy_version']} (content SHA-256 "
                 f"`{scored['content_sha256']}`), test split, {scored['tracks']} tracks. Median SDR (BSS-eval v4, "
                 f"median over 1-s windows per track, then over the tracks), in dB, without the shift trick:\n\n"
                 f"{score_table(scores)}\n\n"
                 f"It beats the best scaled mixture by {mean_gain:.2f} dB on average, and every source by at least "
                 f"{worst_gain:.2f} dB.")


def top_readme_block(info: dict) -> str:
    """The generated sentence of the repository's README: the toy set's hash and the shipped model's score."""
    scores = info["test_sdr_db"]
    scored = info["scored_on"]
    return _wrap(f"The toy set the course's records use is version {scored['toy_version']} with the default "
                 f"arguments; its audio hashes to SHA-256 `{scored['content_sha256']}` (`demucs-course toy-data` "
                 f"prints the hash, and the tests generate the set again and check it). On its {scored['tracks']} "
                 f"test tracks the model shipped in `demucs_course/pretrained/` scores a mean median SDR of "
                 f"{scores['shipped model']['mean']:.2f} dB, against {scores['best scaled mixture']['mean']:.2f} dB "
                 f"for the best scaled mixture (no separation) and {scores['IRM oracle']['mean']:.2f} dB for the IRM "
                 f"oracle (its README has the table).")


def _wrap(text: str, width: int = 118) -> str:
    """Wrap the paragraphs of ``text`` (a table's lines stay whole)."""
    return "\n\n".join(part if part.startswith("|") else textwrap.fill(part, width, break_long_words=False,
                                                                          break_on_hyphens=False)
                         for part in text.split("\n\n"))


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}: generated from demucs_course/pretrained/demucs_toy.json -->", f"<!-- end of {name} -->"


def _replace_block(text: str, name: str, block: str) -> str:
    begin, end = _markers(name)
    pattern = re.compile(re.escape(begin) + r"\n(?:.*?\n)?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"the markers of {name!r} are missing: put {begin!r} and {end!r} on their own lines "
                         "where the generated text goes")
    return pattern.sub(lambda _: f"{begin}\n{block}\n{end}", text, count=1)


def generated_blocks(info: dict) -> dict[Path, list[tuple[str, str]]]:
    """README path -> its (marker name, the text between the markers), as the json says they should be."""
    return {README: [("record", record_block(info)), ("scores", readme_block(info))],
            TOP_README: [("toy records", top_readme_block(info))]}


def update_readmes(info: dict, check: bool = False) -> list[Path]:
    """Rewrite the generated blocks of the READMEs from ``info``; return those that differed (with ``check``, the
    files are left as they are)."""
    stale = []
    for path, blocks in generated_blocks(info).items():
        if not path.is_file():  # an installed package has no repository README
            continue
        text = new = path.read_text()
        for name, block in blocks:
            new = _replace_block(new, name, block)
        if new != text:
            stale.append(path)
            if not check:
                path.write_text(new)
    return stale


def rescore(info: dict) -> dict:
    """``info`` with ``test_sdr_db`` and ``scored_on`` measured again on the toy test set as generated now."""
    from demucs_course.data import load_tracks
    from demucs_course.toy import ensure_toy_musdb, read_manifest
    from demucs_course.loading import load_pretrained

    manifest = read_manifest(ensure_toy_musdb())
    tracks = load_tracks("toy", "test")
    scored_on = {"toy_version": manifest["toy_version"], "toy_arguments": manifest["arguments"],
                 "content_sha256": manifest["content_sha256"], "subset": "test", "tracks": len(tracks),
                 "scoring": SCORING}
    return {**info, "scored_on": scored_on, "test_sdr_db": score_toy_test(load_pretrained(), tracks)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that the READMEs match the json")
    args = parser.parse_args(argv)
    info = json.loads(RECORD.read_text())
    if not args.check:
        info = rescore(info)
        RECORD.write_text(json.dumps(info, indent=2) + "\n")
        print(json.dumps(info["test_sdr_db"], indent=2))
    stale = update_readmes(info, check=args.check)
    for path in stale:
        print(f"{path}: {'differs from' if args.check else 'rewritten from'} {RECORD.name}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
