"""Unmix: rebuild Demucs v1, chapter by chapter.

The course package. Each module holds one concern and its docstring names the chapter that teaches it:

========================  ==========================================================
``toy``                   Chapter 1: a toy multitrack set in the MUSDB18-HQ layout (its content hash, its folder)
``toy_composition``       Chapter 1: the toy songs' keys, chords and patterns
``toy_instruments``       Chapter 1: the toy instruments, drums and voice, rendered to 16-bit stems
``sampled``               Chapter 1: the "sampled" set, General MIDI songs rendered with the FluidR3 GM soundfont
``sampled_composition``   Chapter 1: the sampled set's songs, composed as General MIDI
``sampled_render``        Chapter 1: rendering one stem with the fluidsynth program
``audio``                 Chapter 1: loading audio, players, waveform and spectrogram figures
``oracles``               Chapter 1: the IRM and IBM oracle estimates
``data``                  Chapter 2: musdb tracks, normalisation, the extract dataset
``augment``               Chapter 2: FlipSign, FlipChannels, Shift, Remix, and Repitch (pitch and tempo)
``model``                 Chapters 3-6: Demucs v1
``ablation``              Chapters 3 and 6: short seeded training runs, their spread over seeds
``presets``               Chapter 7: the training config, the presets, sizing a run
``checkpoints``           Chapter 7: atomic checkpoints, random states, export
``train``                 Chapter 7: the training loop
``distributed``           Chapter 7: training on several processes and GPUs under torchrun
``loading``               Chapters 7-9: pick the device, load a checkpoint or the shipped model
``separate``              Chapter 8: whole-track separation and the shift trick
``metrics``               Chapter 9: BSS-eval v4 (SDR, ISR, SIR, SAR), equal to museval
``evaluate``              Chapter 9: scoring a subset, the paper's median of medians
``spectrogram``           Chapter 10: the STFT, Open-Unmix and its multichannel Wiener filter
``capstone``              the capstone: separate your own song, listen, re-mix it
``book``                  every chapter: small helpers for the notebooks, ``glue`` for measured figures
``literature``            every chapter: the numbers quoted from the paper and the reference code, with sources
``pretrained``            Chapters 7-9: the shipped models and the command that scores their records
``grading``               the exercises: the ``grade`` command over otter
``cli``                   every chapter: the ``demucs-course`` command
========================  ==========================================================

Inference never imports training: ``separate`` and ``evaluate`` use ``loading``, which sits below ``train``.
"""

#: The package's version, written only here (pyproject.toml reads it; ``demucs-course --version`` prints it).
__version__ = "0.1.0"

#: The four MUSDB18 stems, in the order Demucs v1 outputs them.
SOURCES = ("drums", "bass", "other", "vocals")

#: MUSDB18's sample rate, and the only one the model sees.
SAMPLE_RATE = 44100


class InputError(ValueError):
    """Input the course cannot use -- a file, a folder, a setting -- with a message that says what to do.

    The command line prints it as one line and exits with status 2. :class:`~demucs_course.audio.AudioError`,
    :class:`~demucs_course.data.DatasetError` and :class:`~demucs_course.evaluate.EvaluationError` are kinds of it.
    It is a ``ValueError``, so code that catches ValueError keeps working.
    """
