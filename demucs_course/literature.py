"""Every chapter: the numbers the course quotes from the literature and the reference code, each with its source.

A figure the course *measures* is computed in a chapter and glued into its prose (:func:`demucs_course.book.glue`).
A figure it *quotes* (the paper's tables, a fact about the reference code or the data set) lives here, once, with
the bibliography key (``book/references.bib``) of the work it comes from. ``tests/test_numbers.py`` lets a number
into a chapter's Markdown only if it is glued, a setting written in the chapter's own code, or one of these
constants in a cell that cites its source.

The paper is cited in its first version, arXiv:1911.13254v1 (25 November 2019), whose tables the reference code's
result files match. The later version (v2, April 2021) retrained the models with pitch/tempo augmentation and
reports higher figures (6.3 dB for Demucs); the course does not quote it unless it says so.

>>> from demucs_course.literature import PAPER_TABLE, FACTS
>>> float(PAPER_TABLE.loc["Demucs v1"].set_index("extra data").loc["no", "All"])   # two Demucs v1 rows: without and with extra data
5.58
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

#: The version of the paper whose numbers the course quotes.
PAPER_VERSION = "arXiv:1911.13254v1 (25 November 2019)"


@dataclass(frozen=True)
class Fact:
    """One quoted number: its ``value`` as the prose writes it, what it is, and the bibliography key of its source."""

    value: str
    what: str
    source: str


#: The paper's comparison on the MUSDB18 test set (median SDR in dB, the museval aggregation of Chapter 9).
#: Empty cells are per-source scores the paper does not give for that row.
PAPER_TABLE = pd.DataFrame(
    [
        # model, extra training data, All, drums, bass, other, vocals, source of the row's method
        ("IRM oracle (IRM2)", "no", 8.22, 8.45, 7.12, 7.85, 9.43, "stoter2018sisec"),
        ("Wave-U-Net", "no", 3.23, None, None, None, None, "stoller2018waveunet"),
        ("Open-Unmix", "no", 5.33, 5.73, 5.23, 4.02, 6.32, "stoter2019openunmix"),
        ("Conv-TasNet", "no", 5.73, None, None, None, None, "luo2019convtasnet"),
        ("Demucs v1", "no", 5.58, 6.08, 5.83, 4.12, 6.29, "defossez2019demucs"),
        ("Demucs v1", "150 extra songs", 6.33, None, None, None, None, "defossez2019demucs"),
    ],
    columns=["model", "extra data", "All", "drums", "bass", "other", "vocals", "method"],
).set_index("model")

#: The paper's ablations of Demucs v1 (one run each, "All" SDR in dB on the MUSDB18 test set).
ABLATIONS = pd.Series(
    {
        "Demucs v1 (full)": 5.58,
        "no GLU (ReLU)": 5.19,
        "no 1x1 rewrite": 5.30,
        "decoder context 1": 5.51,
        "no rescale": 4.94,
        "MSE loss": 5.55,
        "no BiLSTM": 5.12,
    },
    name="All SDR (dB)",
)

#: The summary table of the v1 code's README ("Comparison of accuracy", the README of the v1 code as of April 2020),
#: exactly as printed: one decimal, None where it prints "-". "Overall SDR" is the mean over the four sources of
#: the paper's first version (Demucs 5.6 = 5.58 of PAPER_TABLE, rounded); "MOS Quality" is the listeners' rating from
#: 1 to 5 of naturalness and absence of artifacts (5 = no artifacts), "MOS Contamination" from 1 to 5 with 5 = no
#: contamination by other sources: the listening test of the paper's first version (its Sections 5 and 6), which
#: the course quotes in this rounded form only (it has not checked the paper's own table of it).
README_V1_TABLE = pd.DataFrame(
    [
        # model, domain, extra training data, Overall SDR, MOS Quality, MOS Contamination
        ("Open-Unmix", "spectrogram", "no", 5.3, 3.0, 3.3),
        ("Wave-U-Net", "waveform", "no", 3.2, None, None),
        ("Demucs", "waveform", "no", 5.6, 3.2, 3.3),
        ("Conv-Tasnet", "waveform", "no", 5.7, 2.9, 3.4),
        ("Demucs", "waveform", "150 songs", 6.3, None, None),
        ("Conv-Tasnet", "waveform", "150 songs", 6.3, None, None),
        ("MMDenseLSTM", "spectrogram", "804 songs", 6.0, None, None),
        ("Spleeter", "spectrogram", "undisclosed", 5.9, None, None),
    ],
    columns=["model", "domain", "extra data", "Overall SDR", "MOS Quality", "MOS Contamination"],
)
README_V1_SOURCE = "defossez2019demucs_code"

#: The listening test (mean opinion scores, 1 to 5, higher is better) of the paper's first version, as the v1
#: code's README prints it: the rows of README_V1_TABLE that have one. Source: ``MOS.attrs["source"]``.
MOS = (README_V1_TABLE.dropna(subset=["MOS Quality"])
       .set_index("model")[["MOS Quality", "MOS Contamination"]].astype(float))
MOS.attrs["source"] = README_V1_SOURCE

#: The seed re-implementation's scores on the 50 MUSDB18 test songs (museval, median over windows then tracks,
#: "All" its mean of the sources), its Tables 1 (L1 loss) and 2 (L2 loss), in its column order.
REPORT_SCORES = {
    loss: pd.DataFrame(rows, index=["SDR", "SAR", "SIR", "ISR"], columns=["All", "vocals", "drums", "bass", "other"])
    for loss, rows in {
        "L1": [(3.961, 3.137, 5.302, 5.291, 2.113), (4.872, 3.387, 6.105, 5.418, 4.577),
               (7.274, 8.636, 8.783, 9.229, 2.446), (7.427, 5.086, 8.611, 9.211, 6.798)],
        "L2": [(3.928, 3.663, 5.077, 4.479, 2.494), (5.534, 4.876, 5.300, 6.896, 5.064),
               (5.936, 7.438, 6.177, 7.467, 2.662), (7.722, 6.375, 9.519, 8.705, 6.287)],
    }.items()
}
REPORT_SOURCE = "bartolini_reimplementation"

#: Quoted facts other than the tables above, by a short name.
FACTS: dict[str, Fact] = {
    # the paper's training recipe
    "lr": Fact("3e-4", "Adam learning rate of the paper", "defossez2019demucs"),
    "batch": Fact("64", "batch size of the paper", "defossez2019demucs"),
    "epochs": Fact("120", "training epochs of the paper", "defossez2019demucs"),
    "channels_paper": Fact("100", "initial channels of the paper's main model", "defossez2019demucs"),
    "shifts_paper": Fact("10", "random shifts S at test time in the paper", "defossez2019demucs"),
    "max_shift": Fact("0.5", "largest shift of the shift trick, in seconds (22 050 samples)", "defossez2019demucs"),
    "gpus_report": Fact("16", "V100 GPUs of 32 GB used to train v1, as the re-implementation report says",
                        "bartolini_reimplementation"),
    "gpus_code": Fact("8", "V100 GPUs of 32 GB used to train v1, as the v1 code's README says",
                      "defossez2019demucs_code"),
    "vram": Fact("32", "GB of memory of each V100", "defossez2019demucs_code"),
    "report_hours": Fact("6", "hours the re-implementation trained on one Colab GPU", "bartolini_reimplementation"),
    "report_extracts": Fact("1.25", "extracts per minute of song in the re-implementation", "bartolini_reimplementation"),
    "report_vram": Fact("16", "GB of memory of the re-implementation's Colab GPU", "bartolini_reimplementation"),
    # the pitch and tempo augmentation of the later versions (Chapter 2, augment.Repitch)
    "repitch_proba": Fact("0.2", "probability that an example is repitched", "defossez_demucs_repitch"),
    "repitch_max_pitch": Fact("2", "semitones, the largest pitch change", "defossez_demucs_repitch"),
    "repitch_max_tempo": Fact("12", "percent, the largest tempo change", "defossez_demucs_repitch"),
    "repitch_tempo_std": Fact("5", "percent, the standard deviation of the tempo change", "defossez_demucs_repitch"),
    # the GPU a free Colab runtime lends (for estimates of time on it)
    "t4_fp32_tflops": Fact("8.1", "TFLOP/s, a T4's peak in float32", "nvidia2018t4"),
    "t4_amp_tflops": Fact("65", "TFLOP/s, a T4's peak in mixed precision (float16 on its tensor cores)",
                          "nvidia2018t4"),
    "t4_gb": Fact("16", "GB of memory of a T4", "nvidia2018t4"),
    # the GPU v1 was trained on (for the paper preset's estimate on 8 of them)
    "v100_fp32_tflops": Fact("15.7", "TFLOP/s, a V100's (SXM2) peak in float32", "nvidia_v100"),
    "v100_tensor_tflops": Fact("125", "TFLOP/s, a V100's (SXM2) peak in mixed precision on its tensor cores",
                               "nvidia_v100"),
    # the reference code
    "params_64": Fact("265,679,496", "parameters of Demucs v1 at channels 64", "defossez2019demucs_code"),
    "params_100": Fact("648,548,208", "parameters of Demucs v1 at channels 100", "defossez2019demucs_code"),
    "split_chunk": Fact("640,000", "samples per chunk of v1's apply_model(split=True), no overlap",
                        "defossez2019demucs_code"),
    "split_seconds": Fact("14.5", "seconds in a 640,000-sample chunk at 44.1 kHz", "defossez2019demucs_code"),
    "split_docstring": Fact("8", "seconds v1's split docstring claims", "defossez2019demucs_code"),
    "shifts_readme": Fact("5", "shifts the v1 README says give about the same results as 10",
                          "defossez2019demucs_code"),
    # the data set
    "sample_rate": Fact("44.1", "kHz, MUSDB18's sample rate", "rafii2017musdb18"),
    "musdb_songs": Fact("150", "songs in MUSDB18", "rafii2017musdb18"),
    "musdb_hours": Fact("10", "hours of music in MUSDB18", "rafii2017musdb18"),
    "musdb_train": Fact("100", "training songs of MUSDB18", "rafii2017musdb18"),
    "musdb_test": Fact("50", "test songs of MUSDB18", "rafii2017musdb18"),
    "musdb_valid": Fact("14", "training songs musdb holds out for validation", "rafii2017musdb18"),
    "musdb_gb": Fact("30", "GB of MUSDB18-HQ, uncompressed WAV", "rafii2019musdb18hq"),
    "musdb_compressed_gb": Fact("4.7", "GB of MUSDB18, compressed stems", "rafii2017musdb18"),
    "preview_seconds": Fact("7", "seconds of each musdb preview track", "rafii2017musdb18"),
    # Open-Unmix
    "umx_nfft": Fact("4096", "Open-Unmix STFT length", "stoter2019openunmix"),
    "umx_hop": Fact("1024", "Open-Unmix STFT hop", "stoter2019openunmix"),
    "umx_hidden": Fact("512", "Open-Unmix hidden size", "stoter2019openunmix"),
}


def cited_values() -> dict[str, set[str]]:
    """Every quoted number, as written (grouping commas and spaces removed), with the keys of its sources."""
    values: dict[str, set[str]] = {}

    def add(value, source):
        text = _canonical(value)
        values.setdefault(text, set()).add(source)

    for model, row in PAPER_TABLE.iterrows():
        for column in ("All", "drums", "bass", "other", "vocals"):
            if pd.notna(row[column]):
                add(f"{row[column]:.2f}", "defossez2019demucs")
                if row["method"] != "defossez2019demucs":
                    add(f"{row[column]:.2f}", row["method"])
    for value in ABLATIONS:
        add(f"{value:.2f}", "defossez2019demucs")
    for column in ("Overall SDR", "MOS Quality", "MOS Contamination"):
        for value in README_V1_TABLE[column].dropna():
            add(f"{value:.1f}", README_V1_SOURCE)
    for table in REPORT_SCORES.values():
        for value in table.to_numpy().ravel():
            add(f"{value:.3f}", REPORT_SOURCE)
    for fact in FACTS.values():
        add(fact.value, fact.source)
    return values


def _canonical(text) -> str:
    """``"265,679,496"`` and ``"265 679 496"`` -> ``"265679496"``; ``"5.30"`` stays ``"5.30"``."""
    return str(text).replace(",", "").replace(" ", "").replace("\u202f", "").replace("\u2009", "")


def paper_table(sources: bool = True) -> pd.DataFrame:
    """The paper's comparison table as a chapter shows it: one row per system, the citation key of each method."""
    table = PAPER_TABLE.reset_index()
    table["extra data"] = table["extra data"].where(table["extra data"] != "no", "")
    if not sources:
        table = table.drop(columns="method")
    return table
