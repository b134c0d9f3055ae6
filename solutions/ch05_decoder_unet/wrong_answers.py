"""Plausible wrong answers to exercise 5. Each dict is one wrong submission; the tests check that the autograder
gives every question in it less than full marks (tests/test_exercises.py)."""

WRONG_ANSWERS = [
    {
        # rounds down on the way in: the last samples are never seen, and the result can be too short
        "q1": '''def valid_length(length, depth=6, kernel_size=8, stride=4, context=3):
    if int(length) != length or length < 1:
        raise ValueError("length must be a positive integer")
    for _ in range(depth):
        length = max(1, (length - kernel_size) // stride + 1)
        length += context - 1
    for _ in range(depth):
        length = (length - 1) * stride + kernel_size
    return int(length)''',
        # the odd extra sample comes off the left
        "q2": '''def center_trim(tensor, length):
    delta = tensor.size(-1) - length
    if delta < 0:
        raise ValueError("cannot lengthen")
    left = delta - delta // 2
    return tensor[..., left: left + length]''',
    },
    {
        # forgets the frames the context convolutions eat
        "q1": '''def valid_length(length, depth=6, kernel_size=8, stride=4, context=3):
    if int(length) != length or length < 1:
        raise ValueError("length must be a positive integer")
    for _ in range(depth):
        length = max(1, math.ceil((length - kernel_size) / stride) + 1)
    for _ in range(depth):
        length = (length - 1) * stride + kernel_size
    return int(length)''',
        # slices delta // 2 off each end: wrong for odd differences, and empty when there is nothing to trim
        "q2": '''def center_trim(tensor, length):
    delta = tensor.size(-1) - length
    if delta < 0:
        raise ValueError("cannot lengthen")
    return tensor[..., delta // 2: -(delta // 2)]''',
    },
    {
        # no "at least one frame": a very short input collapses to zero frames
        "q1": '''def valid_length(length, depth=6, kernel_size=8, stride=4, context=3):
    if int(length) != length or length < 1:
        raise ValueError("length must be a positive integer")
    for _ in range(depth):
        length = math.ceil((length - kernel_size) / stride) + 1
        length += context - 1
    for _ in range(depth):
        length = (length - 1) * stride + kernel_size
    return int(length)''',
        # no check: a longer length silently returns the whole tensor
        "q2": '''def center_trim(tensor, length):
    delta = max(0, tensor.size(-1) - length)
    left = delta // 2
    return tensor[..., left: left + length]''',
    },
    {
        # no check of bad lengths
        "q1": '''def valid_length(length, depth=6, kernel_size=8, stride=4, context=3):
    for _ in range(depth):
        length = max(1, math.ceil((length - kernel_size) / stride) + 1)
        length += context - 1
    for _ in range(depth):
        length = (length - 1) * stride + kernel_size
    return int(length)''',
        # trims from the end only
        "q2": '''def center_trim(tensor, length):
    if length > tensor.size(-1):
        raise ValueError("cannot lengthen")
    return tensor[..., :length]''',
    },
]

# Answers that only call the course's own functions: the tests run the student's code inside
# demucs_course.grading_guard.own_work, so these fail (tests/test_exercises.py).
CALL_THROUGH = {
    "q1": '''from demucs_course.model import Demucs
def valid_length(length, depth=6, kernel_size=8, stride=4, context=3):
    with torch.device("meta"):
        model = Demucs(channels=1, depth=depth, kernel_size=kernel_size, stride=stride, context=context,
                       lstm_layers=0)
    return model.valid_length(length)''',
    "q2": '''from demucs_course import model
def center_trim(tensor, length):
    return model.center_trim(tensor, length)''',
}
