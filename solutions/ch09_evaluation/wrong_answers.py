"""Plausible wrong answers to exercise 9. Each dict is one wrong submission; the tests check that the autograder
gives every question in it less than full marks (tests/test_exercises.py)."""

WRONG_ANSWERS = [
    {
        # the log of the wrong ratio: estimate energy over error energy
        "q1": '''def sdr(reference, estimate):
    s = np.asarray(reference, dtype=np.float64)
    s_hat = np.asarray(estimate, dtype=np.float64)
    return float(10 * np.log10(np.sum(s_hat**2) / np.sum((s_hat - s) ** 2)))''',
        # means instead of medians
        "q2": '''def paper_median(scores):
    per_track = np.stack([np.nanmean(np.asarray(t, dtype=np.float64), axis=1) for t in scores])
    return np.mean(per_track, axis=0)''',
    },
    {
        # 20 log10 of an energy ratio (the amplitude formula applied to energies)
        "q1": '''def sdr(reference, estimate):
    s = np.asarray(reference, dtype=np.float64)
    s_hat = np.asarray(estimate, dtype=np.float64)
    return float(20 * np.log10(np.sum(s**2) / np.sum((s_hat - s) ** 2)))''',
        # NaN windows not ignored: np.median propagates them
        "q2": '''def paper_median(scores):
    per_track = np.stack([np.median(np.asarray(t, dtype=np.float64), axis=1) for t in scores])
    return np.median(per_track, axis=0)''',
    },
    {
        # the ratio upside down (error over source), in float32
        "q1": '''def sdr(reference, estimate):
    s = np.asarray(reference)
    s_hat = np.asarray(estimate)
    return float(10 * np.log10(np.sum((s_hat - s) ** 2) / np.sum(s**2)))''',
        # one median over all the windows of all tracks pooled
        "q2": '''def paper_median(scores):
    pooled = np.concatenate([np.asarray(t, dtype=np.float64) for t in scores], axis=1)
    return np.nanmedian(pooled, axis=1)''',
    },
]

# Answers that only call the course's own metrics: the tests run the student's code inside
# demucs_course.grading_guard.own_work, so these fail (tests/test_exercises.py).
CALL_THROUGH = {
    # sdr_v4 refuses a silent estimate (museval does too), so the answer handles that case itself
    "q1": '''from demucs_course.metrics import sdr_v4
def sdr(reference, estimate):
    s = np.asarray(reference, dtype=np.float64)
    s_hat = np.asarray(estimate, dtype=np.float64)
    if not s_hat.any():
        return 0.0
    s, s_hat = s.reshape(-1, s.shape[-1]), s_hat.reshape(-1, s.shape[-1])
    return float(sdr_v4(s.T[None], s_hat.T[None], win=s.shape[-1], hop=s.shape[-1])[0, 0])''',
    "q2": '''from demucs_course import metrics
def paper_median(scores):
    return metrics.median_over_tracks(scores)''',
}
