"""Every chapter: the ``demucs-course`` command. Thin: it parses arguments, calls the package, reports.

``demucs-course --version`` prints the package's version. Subcommands:

- ``demucs-course toy-data [ROOT]``: write the toy multitrack set (Chapter 1) in the MUSDB18-HQ layout, and print
  its content hash.
- ``demucs-course data sampled DIR``: write the sampled multitrack set (Chapter 1: songs played by sampled GM
  instruments with FluidSynth) in the MUSDB18-HQ layout, and print its content hash.
- ``demucs-course tracks SOURCE``: list the tracks a data source gives (Chapter 2).
- ``demucs-course exercises [--course DIR]``: regenerate ``exercises/`` from the otter masters in ``solutions/``.
- ``demucs-course grade SUBMISSIONS -o gradebook.csv [--course DIR]``: grade a folder of submitted exercise notebooks.
- ``demucs-course train --preset tiny-cpu``: train Demucs (Chapter 7); run it again to resume after a disconnect.
  On several GPUs: ``torchrun --nproc_per_node N -m demucs_course.cli train ...`` (``demucs_course.distributed``).
- ``demucs-course separate SONG``: separate a song into drums, bass, other and vocals WAV files (Chapter 8).
- ``demucs-course evaluate [model|IRM2|...|DIR]``: score separations on a musdb subset as the paper does (Chapter 9).
- ``demucs-course serve``: the separation web app, with accounts, a job queue and worker processes (Chapter 11).
- ``demucs-course worker``: more worker processes for it, here or on another machine (Chapter 11).
"""

from __future__ import annotations

import argparse
import linecache
import os
import sys
import time
from pathlib import Path


def _toy_data(args) -> int:
    from .toy import default_toy_root, make_toy_musdb

    root = args.root or default_toy_root()
    start = time.perf_counter()
    root = make_toy_musdb(root, n_train=args.train, n_valid=args.valid, n_test=args.test,
                          train_seconds=args.train_seconds, test_seconds=args.test_seconds,
                          seed=args.seed, overwrite=args.overwrite, progress=True)
    print(f"toy MUSDB18-HQ set in {root} ({time.perf_counter() - start:.1f} s)")
    print(content_line(root))
    return 0


def _data_sampled(args) -> int:
    from tqdm.auto import tqdm

    from .sampled import make_sampled_musdb, read_manifest

    start = time.perf_counter()
    bar = tqdm(desc="rendering the sampled set", unit="song", disable=args.quiet)

    def progress(done, total, name):
        bar.total = total
        bar.set_postfix_str(name, refresh=False)
        bar.update(done - bar.n)

    with bar:
        root = make_sampled_musdb(args.root, n_train=args.train, n_valid=args.valid, n_test=args.test,
                                  train_seconds=args.train_seconds, test_seconds=args.test_seconds, seed=args.seed,
                                  overwrite=args.overwrite, soundfont=args.soundfont, progress=progress)
    print(f"sampled MUSDB18-HQ set in {root} ({time.perf_counter() - start:.1f} s)")
    print(f"content SHA-256: {read_manifest(root)['content_sha256']}")
    return 0


def content_line(root) -> str:
    """The line ``toy-data`` prints about the set's content: the SHA-256 its manifest records over every stem's PCM
    (compare it with a colleague's, or with the one the course pins), or why there is none."""
    from .toy import read_manifest

    digest = (read_manifest(root) or {}).get("content_sha256")
    if digest is None:
        return (f"content SHA-256: not recorded in {root}'s manifest (a set written by an older version of the "
                "course); write it again with --overwrite to record it")
    return f"content SHA-256: {digest}"


def _tracks(args) -> int:
    from .data import get_musdb_tracks

    for subset, split in (("train", "train"), ("train", "valid"), ("test", None)):
        tracks = get_musdb_tracks(args.source, subset, split)
        label = f"{subset}/{split}" if split else subset
        print(f"{label}: {len(tracks)} tracks")
        for track in tracks:
            print(f"  {track.name}  ({track.duration:.1f} s)")
    return 0


def _exercises(args) -> int:
    from .grading import generate_exercises

    for folder in generate_exercises(args.course, args.out, progress=True):
        print(f"wrote {folder}")
    return 0


def _grade(args) -> int:
    from .grading import grade_submissions, write_gradebook

    start = time.perf_counter()
    rows = grade_submissions(args.submissions, timeout=args.timeout, jobs=args.jobs, root=args.course)
    path = write_gradebook(rows, args.output)
    for row in rows:
        note = f"  ({row.reason})" if row.reason else ""
        print(f"{row.submission:40s} {row.exercise:22s} {row.total:5g} / {row.max_total:<5g} {row.status}{note}")
    print(f"{len(rows)} notebooks graded in {time.perf_counter() - start:.0f} s: {path}")
    return 0


def _train(args) -> int:
    from .presets import preset
    from .train import train

    settings = {"data": args.data, "epochs": args.epochs, "batch_size": args.batch_size, "loss": args.loss,
                "checkpoint_dir": args.checkpoint_dir, "seed": args.seed, "device": args.device, "lr": args.lr,
                "segment": args.segment, "shift": args.shift, "workers": args.workers,
                "save_every_steps": args.save_every, "repitch": args.repitch,
                "collective_timeout": args.collective_timeout, "augment": False if args.no_augment else None}
    overrides = {name: value for name, value in settings.items() if value is not None}
    if args.channels is not None:
        overrides["model"] = {"channels": args.channels}
    config = preset(args.preset, **overrides)
    run = train
    if "TORCHELASTIC_ERROR_FILE" in os.environ:       # under torchrun: it reports this process's error, if any
        from torch.distributed.elastic.multiprocessing.errors import record

        run = record(train)
    try:
        result = run(config, resume=not args.no_resume, progress=not args.no_progress,
                     time_limit=None if args.minutes is None else 60 * args.minutes)
    except KeyboardInterrupt:
        if os.environ.get("RANK", "0") == "0":
            print(f"\ninterrupted: run the same command again to resume from {config.checkpoint_dir}/last.pt",
                  file=sys.stderr)
        return 130
    if result.rank != 0:                               # under torchrun, rank 0 reports
        return 0
    best = result.best
    print(f"best validation {config.loss.upper()} {best['valid']:.4f} at epoch {best['epoch']}, "
          f"model in {result.checkpoint_dir / 'best.pt'} ({result.seconds:.0f} s)")
    return 0


def _separate(args) -> int:
    from . import SAMPLE_RATE, SOURCES, InputError
    from .audio import load_audio, save_audio
    from .separate import separate_track
    from .loading import load_checkpoint, load_pretrained, pick_device

    if args.shifts < 0:
        raise InputError(f"--shifts must be 0 or more (the paper uses 10, 5 does about as well), got {args.shifts}")
    mixture = load_audio(args.song)       # first, so that a bad file fails before a model is loaded
    device = pick_device(args.device)
    model = load_pretrained(device, args.model) if args.checkpoint is None else load_checkpoint(args.checkpoint, device)
    if model.sources != len(SOURCES):
        raise InputError(f"the model outputs {model.sources} sources; the separate command writes the "
                         f"{len(SOURCES)} of MUSDB18 ({', '.join(SOURCES)})")
    seconds = mixture.shape[-1] / SAMPLE_RATE
    start = time.perf_counter()
    sources = separate_track(model, mixture, shifts=args.shifts, progress=not args.no_progress)
    folder = Path(args.out).expanduser() / Path(args.song).stem
    for name, source in zip(SOURCES, sources):
        print(f"wrote {save_audio(folder / f'{name}.wav', source)}")
    print(f"separated {seconds:.1f} s of audio in {time.perf_counter() - start:.1f} s on {device} "
          f"(shifts={args.shifts})")
    return 0


def _evaluate(args) -> int:
    from . import InputError
    from .evaluate import REFERENCES, aggregate, evaluate, format_table, model_estimator

    name = args.what
    if name == "model":
        from .loading import load_checkpoint, load_pretrained, pick_device

        device = pick_device(args.device)
        if args.checkpoint is None:
            model, label = load_pretrained(device, args.model), f"{args.model}_shifts{args.shifts}"
        else:
            model, label = load_checkpoint(args.checkpoint, device), f"model_shifts{args.shifts}"
        what = model_estimator(model, shifts=args.shifts)
    else:
        if args.checkpoint is not None or args.shifts:
            raise InputError("--checkpoint and --shifts are for WHAT=model; a reference or a folder of estimates "
                             "takes neither")
        what, label = name, name if name in REFERENCES else Path(name).name
    output = Path(args.output).expanduser() if args.output else Path("evaluation") / label
    start = time.perf_counter()
    from .pretrained import PRETRAINED_MODELS

    data = args.data or PRETRAINED_MODELS[args.model]
    scores = evaluate(what, data, args.subset, output_dir=output, backend=args.backend, tracks=args.tracks,
                      save_estimates=args.save_estimates, progress=not args.no_progress)
    print(format_table(aggregate(scores), f"{name} on {len(scores)} {args.subset} tracks of {args.data} "
                                          "(median over 1-s windows, then over tracks; dB)"))
    print(f"scores of each track in {output / args.subset} ({time.perf_counter() - start:.0f} s, {args.backend} "
          "backend)")
    return 0


def _web_settings(args, **limits):
    """The web app's settings from ``serve``'s or ``worker``'s options; a clear error without the ``web`` extra."""
    try:
        import argon2, email_validator, fastapi, python_multipart, sqlalchemy, uvicorn  # noqa: F401, E401
    except ImportError as error:
        from . import InputError

        raise InputError(f"the web app needs the package's web extra ({error.name} is missing): "
                         "pip install 'demucs-course[web]'") from None
    import os

    from .webapp import Settings

    return Settings(data_dir=args.data_dir, database_url=args.database,
                    secret_key=os.environ.get("UNMIX_SECRET_KEY") or None, **limits)


def _worker_options(args) -> list[str]:
    """The ``worker`` command line options that ``serve`` passes on to its workers."""
    options = ["--device", args.device, "--threads", str(args.threads), "--pause", str(args.pause),
               "--stale-after", str(args.stale_after)]
    if args.checkpoint:
        options += ["--checkpoint", args.checkpoint]
    return options + ["--model", args.model]


def _check_worker_options(args) -> None:
    from . import InputError

    if args.threads < 1 or args.pause < 0 or args.stale_after <= 0:
        raise InputError("--threads must be 1 or more, --pause 0 or more, --stale-after more than 0")
    if args.checkpoint and not Path(args.checkpoint).expanduser().exists():
        raise InputError(f"--checkpoint {args.checkpoint}: no such file or folder; give a .pt file written by "
                         "demucs-course train, or a training folder with best.pt")


def _serve(args) -> int:
    from . import InputError
    from .webapp.server import serve

    if not 0 <= args.port <= 65535 or args.workers < 0:
        raise InputError(f"--port must be from 0 to 65535 (0: any free port) and --workers 0 or more, got "
                         f"{args.port} and {args.workers}")
    _check_worker_options(args)
    settings = _web_settings(
        args, secure_cookies=args.secure_cookies, max_upload_bytes=round(args.max_upload_mb * 2**20),
        max_seconds=args.max_minutes * 60, max_shifts=args.max_shifts, quota_bytes=round(args.quota_mb * 2**20),
        max_jobs=args.max_jobs, expire_seconds=args.expire_hours * 3600, login_limit=args.login_limit,
        signup_limit=args.signup_limit, account_limit=args.account_limit, rate_window=args.rate_window)
    settings.prepare()
    worker = [sys.executable, "-m", "demucs_course.cli", "worker", "--data-dir", str(settings.data_dir),
              *(["--database", args.database] if args.database else []), *_worker_options(args)]
    return serve(settings, host=args.host, port=args.port, workers=args.workers, worker_command=worker,
                 stale_after=args.stale_after, log_level=args.log_level)


def _worker(args) -> int:
    from .webapp.worker import main_loop

    _check_worker_options(args)
    settings = _web_settings(args)
    return main_loop(settings, checkpoint=args.checkpoint, model=args.model, device=args.device,
                     threads=args.threads, pause=args.pause, stale_after=args.stale_after, heartbeat=args.heartbeat,
                     poll=args.poll, parent_pid=args.parent_pid)


def _add_worker_arguments(parser, default_model: str, models) -> None:
    """The options of a worker process, shared by ``worker`` and ``serve`` (which passes them on)."""
    parser.add_argument("--checkpoint", help="separate with this checkpoint (.pt, or a training folder with best.pt) "
                                             "instead of a shipped model")
    parser.add_argument("--model", default=default_model, choices=list(models),
                        help=f"the shipped model (default {default_model})")
    parser.add_argument("--device", default="auto", help="where a worker runs the model: auto (cuda, mps, cpu), cpu, cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker process (default 1)")
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds a worker waits after separating, before writing the stems, to watch a running "
                             "job or stop a worker mid-job in a demonstration (default 0)")
    parser.add_argument("--stale-after", type=float, default=30.0,
                        help="a running job without a heartbeat for this many seconds goes back to the queue "
                             "(default 30)")


def _set_size_arguments(parser, what: str, train: int, valid: int, test: int, train_seconds: float,
                        test_seconds: float) -> None:
    """The options that size a data set: numbers of tracks, their lengths, the seed (``toy-data``, ``data ...``)."""
    item = what[:-1]
    parser.add_argument("--train", type=int, default=train, help=f"number of train {what} (default {train})")
    parser.add_argument("--valid", type=int, default=valid,
                        help=f"how many of them form the validation split (default {valid})")
    parser.add_argument("--test", type=int, default=test, help=f"number of test {what} (default {test})")
    parser.add_argument("--train-seconds", type=float, default=float(train_seconds),
                        help=f"length of each train {item} (default {train_seconds:g})")
    parser.add_argument("--test-seconds", type=float, default=float(test_seconds),
                        help=f"length of each test {item} (default {test_seconds:g})")
    parser.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .pretrained import DEFAULT_MODEL, PRETRAINED_MODELS

    parser = argparse.ArgumentParser(prog="demucs-course", description="Unmix: rebuild Demucs v1, chapter by chapter.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    toy = sub.add_parser("toy-data", help="write the toy multitrack set (MUSDB18-HQ layout)")
    toy.add_argument("root", nargs="?", help="output folder (default: the course's cache folder)")
    _set_size_arguments(toy, "tracks", train=16, valid=2, test=4, train_seconds=20, test_seconds=8)
    toy.add_argument("--overwrite", action="store_true", help="replace a different set already in ROOT")
    toy.set_defaults(func=_toy_data)

    data = sub.add_parser("data", help="write a multitrack data set (MUSDB18-HQ layout)")
    kinds = data.add_subparsers(dest="kind", required=True)
    sampled = kinds.add_parser("sampled", help="songs composed as General MIDI, each stem rendered by FluidSynth "
                                               "with the FluidR3 GM soundfont")
    sampled.add_argument("root", metavar="DIR", help="output folder (empty, new, or holding a sampled set)")
    _set_size_arguments(sampled, "songs", train=128, valid=12, test=24, train_seconds=30, test_seconds=30)
    sampled.add_argument("--soundfont", help="a GM soundfont (default /usr/share/sounds/sf2/FluidR3_GM.sf2)")
    sampled.add_argument("--overwrite", action="store_true", help="replace a different sampled set already in DIR")
    sampled.add_argument("--quiet", action="store_true", help="no progress bar")
    sampled.set_defaults(func=_data_sampled)

    tracks = sub.add_parser("tracks", help="list the tracks of a data source")
    tracks.add_argument("source", help="'toy', 'preview', or a MUSDB18 / MUSDB18-HQ root")
    tracks.set_defaults(func=_tracks)

    course_help = ("the course: a clone of its repository, or a folder of exercise masters <name>/<name>.ipynb "
                   "such as a private repository of them (default: this checkout; needed when the package was "
                   "installed from a wheel)")
    exercises = sub.add_parser("exercises", help="regenerate exercises/ from the masters in solutions/ (otter assign)")
    exercises.add_argument("--course", metavar="DIR", help=course_help)
    exercises.add_argument("--out", metavar="DIR", help="where the student notebooks go (default: COURSE/exercises)")
    exercises.set_defaults(func=_exercises)

    grade = sub.add_parser("grade", help="grade a folder of submitted exercise notebooks into a CSV gradebook")
    grade.add_argument("submissions", help="folder of submitted notebooks (searched recursively)")
    grade.add_argument("-o", "--output", default="gradebook.csv", help="the CSV to write (default gradebook.csv)")
    grade.add_argument("--timeout", type=float, default=600, help="seconds allowed per notebook (default 600)")
    grade.add_argument("--jobs", type=int, default=1, help="notebooks graded at once (default 1)")
    grade.add_argument("--course", metavar="DIR", help=course_help)
    grade.set_defaults(func=_grade)

    train = sub.add_parser("train", help="train Demucs from a preset; run again to resume from its checkpoint")
    train.add_argument("--preset", default="tiny-cpu", choices=["tiny-cpu", "sampled-cpu", "colab-t4", "paper"],
                       help="tiny-cpu (minutes on a CPU, toy set), sampled-cpu (an hour on 2 CPU cores, the sampled "
                            "set), colab-t4 (one 16 GB GPU), paper (default tiny-cpu)")
    train.add_argument("--data", help="toy, sampled, preview, or the MUSDB18 / MUSDB18-HQ root (needed by colab-t4 and paper)")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int, help="a multiple of the Remix group of 4; global: under torchrun "
                       "with N processes each takes 1/N of every batch")
    train.add_argument("--channels", type=int, help="the model's first-layer channels (the paper: 100)")
    train.add_argument("--loss", choices=["l1", "l2"])
    train.add_argument("--lr", type=float, help="Adam's learning rate (the presets: 1e-3 for tiny-cpu, else 3e-4)")
    train.add_argument("--segment", type=float, help="seconds of audio per extract (the paper: 10)")
    train.add_argument("--shift", type=float, help="seconds of room for the Shift augmentation (the paper: 1)")
    train.add_argument("--repitch", type=float,
                       help="probability of a pitch and tempo change per extract (the paper's v2: 0.2; 0: off)")
    train.add_argument("--no-augment", action="store_true",
                       help="no random augmentation (FlipSign, FlipChannels, Shift, Remix; and --repitch 0)")
    train.add_argument("--checkpoint-dir", help="the folder of last.pt and best.pt (Colab: a folder on Drive)")
    train.add_argument("--save-every", type=int, help="also checkpoint every N steps")
    train.add_argument("--workers", type=int, help="DataLoader worker processes")
    train.add_argument("--seed", type=int)
    train.add_argument("--device", help="auto (cuda, mps, cpu), cpu, cuda, cuda:1, mps")
    train.add_argument("--collective-timeout", type=float,
                       help="under torchrun: seconds a process waits for the others before it stops (default 600)")
    train.add_argument("--minutes", type=float, help="stop after the last epoch that fits in this many minutes")
    train.add_argument("--no-resume", action="store_true", help="start again, overwriting the folder's checkpoints")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.set_defaults(func=_train)

    separate = sub.add_parser("separate", help="separate a song into drums, bass, other and vocals (WAV files)")
    separate.add_argument("song", help="the audio file: WAV, FLAC, MP3 (or anything ffmpeg decodes)")
    separate.add_argument("-o", "--out", default="separated",
                          help="output folder; the stems go to OUT/<song name>/<stem>.wav (default: separated)")
    separate.add_argument("--shifts", type=int, default=0,
                          help="the shift trick: average this many randomly shifted passes (default 0; the paper 10)")
    separate.add_argument("--model", default=DEFAULT_MODEL, choices=list(PRETRAINED_MODELS),
                          help=f"the shipped model (default {DEFAULT_MODEL})")
    separate.add_argument("--checkpoint", help="a model checkpoint (.pt, or a training folder with best.pt) instead "
                                               "of a shipped model")
    separate.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:1, mps")
    separate.add_argument("--no-progress", action="store_true", help="no progress bar")
    separate.set_defaults(func=_separate)

    evaluate = sub.add_parser("evaluate", help="score a model, a reference or a folder of estimates on a musdb subset "
                                               "(SDR, SIR, SAR, ISR as in the paper)")
    evaluate.add_argument("what", nargs="?", default="model",
                          help="model (a shipped model, --model, or --checkpoint), IRM2, IBM, mixture, best_scaled_mixture, "
                               "or a folder of estimates DIR/<subset>/<track>/<source>.wav (default: model)")
    evaluate.add_argument("--model", default=DEFAULT_MODEL, choices=list(PRETRAINED_MODELS),
                          help=f"the shipped model to score (default {DEFAULT_MODEL})")
    evaluate.add_argument("--data", help="toy, sampled, preview, or a MUSDB18 / MUSDB18-HQ root (default: the set "
                                         "the --model was trained on)")
    evaluate.add_argument("--subset", default="test", choices=["test", "train"], help="default: test")
    evaluate.add_argument("-o", "--output", help="folder of the per-track scores (museval's JSON); run again to "
                                                 "resume (default: evaluation/<what>)")
    evaluate.add_argument("--backend", default="fast", choices=["fast", "museval"],
                          help="fast (default) or museval (the reference: same numbers, much slower)")
    evaluate.add_argument("--shifts", type=int, default=0, help="the shift trick for a model (default 0; paper 10)")
    evaluate.add_argument("--checkpoint", help="a model checkpoint (.pt, or a training folder with best.pt)")
    evaluate.add_argument("--device", default="auto", help="where a model runs: auto (cuda, mps, cpu), cpu, cuda")
    evaluate.add_argument("--tracks", nargs="+", help="only these tracks (names as musdb gives them)")
    evaluate.add_argument("--save-estimates", help="also write the separated sources to this folder")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluate.set_defaults(func=_evaluate)

    data_help = "the folder of uploads, stems, the SQLite database and the session secret (default: unmix-data)"
    database_help = ("an SQLAlchemy URL: sqlite:///file.sqlite3 or postgresql+psycopg://user:password@host:port/db "
                     "(default: SQLite in the data folder)")
    serve = sub.add_parser("serve", help="the separation web app: accounts, uploads, a job queue, worker processes")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1; 0.0.0.0: all)")
    serve.add_argument("--port", type=int, default=8000, help="the port (default 8000; 0: any free port)")
    serve.add_argument("--data-dir", default="unmix-data", help=data_help)
    serve.add_argument("--database", help=database_help)
    serve.add_argument("--workers", type=int, default=1,
                       help="worker processes to start and supervise (default 1; 0: run demucs-course worker yourself)")
    _add_worker_arguments(serve, DEFAULT_MODEL, PRETRAINED_MODELS)
    serve.add_argument("--secure-cookies", action="store_true",
                       help="mark the session cookie Secure: set it when the service is served over HTTPS")
    serve.add_argument("--max-upload-mb", type=float, default=100, help="the largest upload (default 100)")
    serve.add_argument("--max-minutes", type=float, default=15, help="the longest song (default 15)")
    serve.add_argument("--max-shifts", type=int, default=5, help="the most shifts a job may ask for (default 5)")
    serve.add_argument("--quota-mb", type=float, default=2048, help="storage per user, uploads and stems (default 2048)")
    serve.add_argument("--max-jobs", type=int, default=50, help="jobs kept per user (default 50)")
    serve.add_argument("--expire-hours", type=float, default=168,
                       help="finished jobs and their files are deleted after this many hours (default 168)")
    serve.add_argument("--login-limit", type=int, default=30, help="log-in attempts per client address per window "
                                                                   "(default 30)")
    serve.add_argument("--signup-limit", type=int, default=10, help="sign-ups per client address per window (default 10)")
    serve.add_argument("--account-limit", type=int, default=5,
                       help="failed log-ins, and sign-ups, per e-mail address per window (default 5)")
    serve.add_argument("--rate-window", type=float, default=900, help="the rate limits' window in seconds (default 900)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                       help="the server's log (debug: every request too; default info)")
    serve.set_defaults(func=_serve)

    worker = sub.add_parser("worker", help="a worker process for the web app: separates the queued jobs")
    worker.add_argument("--data-dir", default="unmix-data", help=data_help)
    worker.add_argument("--database", help=database_help)
    _add_worker_arguments(worker, DEFAULT_MODEL, PRETRAINED_MODELS)
    worker.add_argument("--heartbeat", type=float, default=2.0, help="seconds between heartbeats (default 2)")
    worker.add_argument("--poll", type=float, default=0.5, help="seconds between looks at an empty queue (default 0.5)")
    worker.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)    # serve's: stop when it is gone
    worker.set_defaults(func=_worker)
    return parser


def main(argv=None) -> int:
    """Run a command. Exit status 0: done; 2: bad input or usage, said in one line; 1: an unexpected error;
    130: interrupted with Ctrl-C, said in one line.

    Bad input -- a file, a folder or a setting the course cannot use -- is an error the course raises on purpose
    with a message that says what to do (:func:`is_bad_input`): it is printed as one line, since a traceback would
    only hide it. Anything else -- a bug, torch failing inside, CUDA out of memory -- keeps its traceback (exit 1):
    that is what a bug report, or the person fixing the machine, needs.
    """
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"\ndemucs-course {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if not is_bad_input(error):
            raise
        message = " ".join(str(error).split()) or type(error).__name__   # one line, whatever the message holds
        print(f"demucs-course {args.command}: error: {message}", file=sys.stderr)
        return 2


#: Errors the course's own code raises on purpose for unusable input, by type.
_MESSAGE_TYPES = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError)


def is_bad_input(error: BaseException) -> bool:
    """Whether ``error`` is the course telling the user about bad input (exit 2), not an unexpected failure.

    True for an :class:`~demucs_course.InputError` (``AudioError``, ``DatasetError``, ``EvaluationError``...), and
    for the grading command's ``GradingError``; and for a ValueError or a missing file or folder raised by a ``raise``
    statement in the course's own code (a check with a message, in a module that predates ``InputError``).
    The same types raised inside torch, numpy or another library are unexpected: a RuntimeError never is bad input.
    """
    from . import InputError

    grading = sys.modules.get(f"{__package__}.grading")           # loaded if the error came from there
    if isinstance(error, (InputError, *((grading.GradingError,) if grading else ()))):
        return True
    if not isinstance(error, _MESSAGE_TYPES):
        return False
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    if frame is None:
        return False
    filename = Path(frame.tb_frame.f_code.co_filename).resolve()
    line = linecache.getline(str(filename), frame.tb_lineno).strip()
    return filename.parent == Path(__file__).resolve().parent and line.startswith("raise ")


if __name__ == "__main__":
    sys.exit(main())
