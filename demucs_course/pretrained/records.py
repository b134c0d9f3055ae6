"""Chapter 7: the shipped models' records -- their scores, measured, and the tables the READMEs show, generated.

Beside this file, ``demucs_<name>.pt`` is a model (``sampled``: trained on the sampled-instrument set; ``toy``: on
the toy set), ``demucs_<name>.json`` its record (how it was made, on which data set, and what it scores), and
``README.md`` the same for people. The scores are measured by :func:`score_test` with the package's own functions
on the test split of the set the model was trained on, and every figure the READMEs quote is written from the json
by :func:`update_readmes` between two marker comments, so a record cannot drift from the measurement;
``tests/test_pretrained.py`` measures again and checks both.

    python -m demucs_course.pretrained.records              # re-score every model, rewrite the jsons and READMEs
    python -m demucs_course.pretrained.records --model toy  # only one
    python -m demucs_course.pretrained.records --check      # exit 1 if a README differs from the json
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
SCORING = ("median SDR (BSS-eval v4, evaluate.median_sdr): median over 1-s windows per track, then over the {data} "
           "test tracks, in dB; the model separates each track whole, without the shift trick (separate_track)")
#: The data sets the models are trained and scored on: what the READMEs call them.
DATA_NAMES = {"toy": "toy set", "sampled": "sampled-instrument set"}


def record_path(name: str) -> Path:
    """The json record of the shipped model ``name``."""
    from demucs_course.loading import pretrained_path

    return pretrained_path(name, ".json")


def score_test(model, source: str = "toy", tracks=None) -> dict[str, dict[str, float]]:
    """The median SDR, in dB to 2 decimals, on a test set (``source``: ``"toy"`` or ``"sampled"``) of ``model`` and
    the three references of ``ROWS``.

    ``model`` separates each whole track in one pass (``separate_track``, no shift trick); the references are the
    mixture itself as every source, the best scaled mixture (least-squares gain, no separation) and the IRM oracle.
    ``tracks`` defaults to ``load_tracks(source, "test")``.
    """
    from demucs_course.data import load_tracks
    from demucs_course.oracles import best_scaled_mixture, irm
    from demucs_course.separate import separate_track
    from demucs_course.evaluate import median_sdr

    tracks = load_tracks(source, "test") if tracks is None else tracks
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


def _data(info: dict) -> str:
    """The data set a record's model was trained on: ``"toy"`` or ``"sampled"``."""
    return info["config"]["data"]


def record_block(info: dict) -> str:
    """The generated part of this folder's README that says what a model is and how it was made."""
    from demucs_course.model import TINY

    config, data = info["config"], _data(info)
    arguments = info[f"{data}_arguments"]
    model = ", ".join(f"{key}={value}" for key, value in config["model"].items())
    call = ", ".join(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
                     for key, value in arguments.items())
    trained_on = (f"content SHA-256 `{info[f'{data}_content_sha256']}`" if info.get(f"{data}_content_sha256")
                  else "content not recorded")
    best = next(e for e in info["validation_history"] if e["epoch"] == info["best_epoch"])
    extracts = (f"{config['segment']:g}-s extracts with a {config['stride']:g}-s stride" if config["stride"] else
                f"{config['per_minute']:g} random {config['segment']:g}-s extracts per minute of track, drawn again "
                f"every epoch")
    augment = f", Repitch {config['repitch']:g}" if config.get("repitch") else ""
    rows = {
        "model": f"`Demucs({model})`{' (the `TINY` settings)' if config['model'] == TINY else ''}, "
                 f"{info['parameters']:,} parameters",
        "file": f"{info['bytes'] / 1024:.0f} KiB: float16 weights (restored to float32 when loaded), the training "
                f"config and history; SHA-256 `{info['sha256']}`",
        "data": f"the default {DATA_NAMES[data]}, version {info[f'{data}_version']}, `make_{data}_musdb({call})` "
                f"({trained_on}): {arguments['n_train'] - arguments['n_valid']} training tracks, "
                f"{arguments['n_valid']} validation tracks",
        "training": f"the `{info['preset']}` preset: {extracts}, Shift {config['shift']:g} s{augment}, batch "
                    f"{config['batch_size']}, {config['loss'].upper()} loss, Adam at {config['lr']:g}, "
                    f"{len(info['validation_history'])} epochs ({info['steps']:,} steps), seed {config['seed']}",
        "best epoch": f"{info['best_epoch']} of {len(info['validation_history'])}, validation "
                      f"{config['loss'].upper()} {best['valid']:.4f} (normalised scale)",
        "time": f"{info['training_seconds']:.0f} s ({info['training_seconds'] / 60:.0f} min) wall, "
                f"{info['training_cpu_seconds']:.0f} s of CPU time, on {info['machine']}",
    }
    table = "\n".join(["| | |", "|---|---|"] + [f"| {key} | {value} |" for key, value in rows.items()])
    return (f"{table}\n\nIt was made by this repository's own command, then exported to float16:\n\n"
            f"```\n{info['command']}\n{info['export']}\n```")


def readme_block(info: dict) -> str:
    """The generated part of this folder's README: a model's score table and what it says."""
    scores, data = info["test_sdr_db"], _data(info)
    mean_gain, worst_gain = margins(scores)
    scored = info["scored_on"]
    return _wrap(f"Scored on the {DATA_NAMES[data]} version {scored[f'{data}_version']} (content SHA-256 "
                 f"`{scored['content_sha256']}`), test split, {scored['tracks']} tracks. Median SDR (BSS-eval v4, "
                 f"median over 1-s windows per track, then over the tracks), in dB, without the shift trick:\n\n"
                 f"{score_table(scores)}\n\n"
                 f"It beats the best scaled mixture by {mean_gain:.2f} dB on average, and every source by at least "
                 f"{worst_gain:.2f} dB.")


def top_readme_block(info: dict) -> str:
    """The generated sentence of the repository's README: a data set's hash and its shipped model's score."""
    scores, data = info["test_sdr_db"], _data(info)
    scored = info["scored_on"]
    command = {"toy": "demucs-course toy-data", "sampled": "demucs-course data sampled"}[data]
    name = info["file"][:-3].removeprefix("demucs_")
    return _wrap(f"The {DATA_NAMES[data]} the course's records use is version {scored[f'{data}_version']} with the "
                 f"default arguments; its audio hashes to SHA-256 `{scored['content_sha256']}` (`{command}` prints "
                 f"the hash, and the tests check it). On its {scored['tracks']} test tracks the `{name}` model "
                 f"shipped in `demucs_course/pretrained/` scores a mean median SDR of "
                 f"{scores['shipped model']['mean']:.2f} dB, against {scores['best scaled mixture']['mean']:.2f} dB "
                 f"for the best scaled mixture (no separation) and {scores['IRM oracle']['mean']:.2f} dB for the IRM "
                 f"oracle (its README has the table).")


def _wrap(text: str, width: int = 118) -> str:
    """Wrap the paragraphs of ``text`` (a table's lines stay whole)."""
    return "\n\n".join(part if part.startswith("|") else textwrap.fill(part, width, break_long_words=False,
                                                                          break_on_hyphens=False)
                         for part in text.split("\n\n"))


def _markers(name: str, record: str) -> tuple[str, str]:
    return f"<!-- {name}: generated from demucs_course/pretrained/{record} -->", f"<!-- end of {name} -->"


def _replace_block(text: str, name: str, block: str, record: str = "demucs_toy.json") -> str:
    begin, end = _markers(name, record)
    pattern = re.compile(re.escape(begin) + r"\n(?:.*?\n)?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"the markers of {name!r} are missing: put {begin!r} and {end!r} on their own lines "
                         "where the generated text goes")
    return pattern.sub(lambda _: f"{begin}\n{block}\n{end}", text, count=1)


def generated_blocks(info: dict) -> dict[Path, list[tuple[str, str]]]:
    """README path -> its (marker name, the text between the markers), as a model's json says they should be."""
    data = _data(info)
    return {README: [(f"{data} record", record_block(info)), (f"{data} scores", readme_block(info))],
            TOP_README: [(f"{data} records", top_readme_block(info))]}


def update_readmes(info: dict, check: bool = False) -> list[Path]:
    """Rewrite the generated blocks of the READMEs from a model's record ``info``; return those that differed
    (with ``check``, the files are left as they are)."""
    stale, record = [], info["file"][:-3] + ".json"
    for path, blocks in generated_blocks(info).items():
        if not path.is_file():  # an installed package has no repository README
            continue
        text = new = path.read_text()
        for name, block in blocks:
            new = _replace_block(new, name, block, record)
        if new != text:
            stale.append(path)
            if not check:
                path.write_text(new)
    return stale


def rescore(info: dict) -> dict:
    """``info`` with ``test_sdr_db`` and ``scored_on`` measured again on its data set's test split as rendered now."""
    from demucs_course.data import load_tracks
    from demucs_course.loading import load_checkpoint

    data = _data(info)
    if data == "toy":
        from demucs_course.toy import ensure_toy_musdb as ensure, read_manifest
    else:
        from demucs_course.sampled import ensure_sampled_musdb as ensure, read_manifest
    manifest = read_manifest(ensure())
    tracks = load_tracks(data, "test")
    scored_on = {f"{data}_version": manifest[f"{data}_version"], f"{data}_arguments": manifest["arguments"],
                 "content_sha256": manifest["content_sha256"], "subset": "test", "tracks": len(tracks),
                 "scoring": SCORING.format(data=DATA_NAMES[data])}
    return {**info, "scored_on": scored_on, "test_sdr_db": score_test(load_checkpoint(HERE / info["file"]), data,
                                                                      tracks)}


def new_record(name: str, checkpoint_dir, *, preset: str, command: str, cpu_seconds: float, machine: str,
               trained_by: str | None = None, curves=()) -> dict:
    """Ship the best model of a training folder as the model ``name``: export it (float16) beside this file with the
    data set's version, arguments and hash as metadata, and write its json record (everything but the scores, which
    :func:`rescore` measures). ``command`` is the one command that trains it; ``trained_by``, if the run was made
    another way with the same steps (e.g. ``bench/train_sampled.py``, which stops and resumes at epoch ends), that
    command. ``curves``: the ``--json`` files of ``bench/train_sampled.py`` that trained it, in order (a resumed
    run's clock starts again at 0; the curve is joined end to end): the test-set SDR against training time, stored
    as ``sdr_curve``. Returns the record."""
    import hashlib
    import platform

    import torch

    from demucs_course.checkpoints import export_model
    from demucs_course.loading import PRETRAINED_MODELS, pretrained_path, read_checkpoint
    from demucs_course.model import Demucs, count_parameters

    data = PRETRAINED_MODELS[name]
    if data == "toy":
        from demucs_course.toy import ensure_toy_musdb as ensure, read_manifest
    else:
        from demucs_course.sampled import ensure_sampled_musdb as ensure, read_manifest
    manifest = read_manifest(ensure())
    folder = Path(checkpoint_dir).expanduser()
    best, last = read_checkpoint(folder / "best.pt"), read_checkpoint(folder / "last.pt")
    dataset = {f"{data}_version": manifest[f"{data}_version"], f"{data}_arguments": manifest["arguments"],
               f"{data}_content_sha256": manifest["content_sha256"]}
    metadata = {"command": command, "seed": best["config"]["seed"], **dataset}
    path = pretrained_path(name)
    export = (f"python -m demucs_course.pretrained.records --new {name} --from {folder} --preset {preset} "
              f"--command '{command}'")
    export_model(folder / "best.pt", path, metadata=metadata)
    history = last["history"]["epochs"]
    sdr_curve, offset = [], 0.0
    for curve_file in curves:
        points = json.loads(Path(curve_file).read_text())["curve"]
        sdr_curve += [{**point, "minutes": round(point["minutes"] + offset, 2)} for point in points]
        offset += points[-1]["minutes"] if points else 0.0
    info = {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "bytes": path.stat().st_size,
            "command": command, **({"trained_by": trained_by} if trained_by else {}), "export": export,
            "preset": preset, "seed": best["config"]["seed"], "config": best["config"],
            "parameters": count_parameters(Demucs(**best["config"]["model"])),
            "weights": "float16 in the file, float32 once loaded (load_pretrained)", **dataset,
            "steps": len(last["history"]["step_loss"]),
            "training_seconds": round(sum(e["seconds"] for e in history)),
            "training_cpu_seconds": round(cpu_seconds), "machine": machine or
            f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads",
            "best_epoch": best["epoch"],
            "validation_history": [{key: round(value, 5) if isinstance(value, float) else value
                                    for key, value in epoch.items()} for epoch in history],
            **({"sdr_curve": sdr_curve, "sdr_curve_clock": "CPU minutes of training, 1 thread"} if sdr_curve else {})}
    record_path(name).write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv=None) -> int:
    from demucs_course.loading import PRETRAINED_MODELS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that the READMEs match the jsons")
    parser.add_argument("--model", choices=list(PRETRAINED_MODELS), action="append",
                        help="the model to re-score (default: every one)")
    new = parser.add_argument_group("shipping a new model (then it is scored and the READMEs rewritten)")
    new.add_argument("--new", choices=list(PRETRAINED_MODELS), help="the model to replace")
    new.add_argument("--from", dest="folder", help="its training folder (best.pt and last.pt)")
    new.add_argument("--preset", help="the preset it was trained from")
    new.add_argument("--command", help="the one command that trains it")
    new.add_argument("--trained-by", help="the command that did, if another with the same steps")
    new.add_argument("--cpu-seconds", type=float, help="the CPU time its training took")
    new.add_argument("--machine", default="", help="where it was trained")
    new.add_argument("--curve", action="append", default=[], help="a bench/train_sampled.py --json file (repeat)")
    args = parser.parse_args(argv)
    if args.new:
        new_record(args.new, args.folder, preset=args.preset, command=args.command, cpu_seconds=args.cpu_seconds,
                   machine=args.machine, trained_by=args.trained_by, curves=args.curve)
        args.model = [args.new]
    stale = []
    for name in args.model or [n for n in PRETRAINED_MODELS if record_path(n).is_file()]:
        path = record_path(name)
        info = json.loads(path.read_text())
        if not args.check:
            info = rescore(info)
            path.write_text(json.dumps(info, indent=2) + "\n")
            print(name, json.dumps(info["test_sdr_db"], indent=2))
        for readme in update_readmes(info, check=args.check):
            stale.append(readme)
            print(f"{readme}: {'differs from' if args.check else 'rewritten from'} {path.name}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
