"""Plausible wrong answers to exercise 8. Each dict is one wrong submission; the tests check that the autograder
gives every question in it less than full marks (tests/test_exercises.py)."""

WRONG_ANSWERS = [
    {
        # draws with replacement: two shifts can be the same
        "q1": '''def distinct_offsets(shifts, max_shift):
    return torch.randint(max_shift, (shifts,))''',
        # keeps the window at the offset instead of undoing the shift
        "q2": '''def shift_average(model_fn, mix, offsets, max_shift):
    length = mix.shape[-1]
    padded = torch.nn.functional.pad(mix, (max_shift, max_shift))
    outs = [model_fn(padded[..., o: o + length + max_shift])[..., o: o + length] for o in offsets.tolist()]
    return sum(outs) / len(outs)''',
    },
    {
        # always the same offsets: not random
        "q1": '''def distinct_offsets(shifts, max_shift):
    if shifts > max_shift:
        raise ValueError("too many shifts")
    return torch.arange(shifts)''',
        # shifts the input only on one side and forgets to average (sums)
        "q2": '''def shift_average(model_fn, mix, offsets, max_shift):
    length = mix.shape[-1]
    padded = torch.nn.functional.pad(mix, (max_shift, max_shift))
    total = 0
    for o in offsets.tolist():
        total = total + model_fn(padded[..., o: o + length + max_shift])[..., max_shift - o: max_shift - o + length]
    return total''',
    },
]

# The course has no function that draws distinct offsets or averages given shifts (apply_model draws its own
# offsets below a fixed 0.5 s): no answer can only call it. The tests still run the answers inside own_work.
CALL_THROUGH = {}
