"""Plausible wrong answers to exercise 1. Each dict is one wrong submission; the tests check that the autograder
gives every question in it less than full marks (tests/test_exercises.py)."""

WRONG_ANSWERS = [
    {
        # normalises over the last axis (frames) instead of over the sources
        "q1": '''def ratio_masks(power):
    return power / (1e-12 + power.sum(dim=-1, keepdim=True))''',
        # masks each source's own STFT instead of the mixture's: "perfect", and not a masking method at all
        "q2": '''def irm_estimates(sources, alpha=2):
    specs = stft(sources)
    masks = ratio_masks(specs.abs() ** alpha)
    return istft(masks * specs, sources.shape[-1])''',
    },
    {
        # divides without epsilon: NaN in silent bins
        "q1": '''def ratio_masks(power):
    return power / power.sum(dim=0, keepdim=True)''',
        # ignores alpha (always magnitudes)
        "q2": '''def irm_estimates(sources, alpha=2):
    mixture = sources.sum(dim=0)
    masks = ratio_masks(stft(sources).abs())
    return istft(masks * stft(mixture), sources.shape[-1])''',
    },
]

# An answer that only calls the course's own oracle: the tests run the student's code inside
# demucs_course.grading_guard.own_work, so it fails (tests/test_exercises.py). Question 1 has no package function
# that turns powers into masks.
CALL_THROUGH = {
    "q2": '''from demucs_course.oracles import irm
def irm_estimates(sources, alpha=2):
    return irm(sources, alpha=alpha)''',
}
