"""Plausible wrong answers to exercise 2. Each dict is one wrong submission; the tests check that the autograder
gives every question in it less than full marks (tests/test_exercises.py)."""

WRONG_ANSWERS = [
    {
        # swaps all the sources of an example together, instead of each source on its own
        "q1": '''def flip_channels(wav):
    swap = torch.randint(2, (wav.shape[0], 1, 1, 1)).bool()
    return torch.where(swap, wav.flip(2), wav)''',
        # one permutation shared by all sources: shuffles whole examples, which makes no new mixtures
        "q2": '''def remix(wav, group_size=4):
    batch, sources, channels, time = wav.shape
    if batch % group_size:
        raise ValueError("batch size not a multiple of group_size")
    groups = batch // group_size
    perm = torch.argsort(torch.rand(groups, group_size), dim=1)
    perm = perm + group_size * torch.arange(groups)[:, None]
    return wav[perm.reshape(-1)]''',
    },
    {
        # flips the sign, not the channels
        "q1": '''def flip_channels(wav):
    sign = 2 * torch.randint(2, (wav.shape[0], wav.shape[1], 1, 1)) - 1
    return wav * sign''',
        # permutes each source across the whole batch, ignoring the groups
        "q2": '''def remix(wav, group_size=4):
    batch, sources, channels, time = wav.shape
    if batch % group_size:
        raise ValueError("batch size not a multiple of group_size")
    out = torch.empty_like(wav)
    for s in range(sources):
        out[:, s] = wav[torch.randperm(batch), s]
    return out''',
    },
]

# Answers that only call the course's own augmentations: the tests run the student's code inside
# demucs_course.grading_guard.own_work, so these fail (tests/test_exercises.py).
CALL_THROUGH = {
    "q1": '''from demucs_course.augment import FlipChannels
def flip_channels(wav):
    return FlipChannels()(wav)''',
    "q2": '''from demucs_course import augment
def remix(wav, group_size=4):
    return augment.Remix(group_size)(wav)''',
}
