"""Plausible wrong answers to exercise 4. Each dict is one wrong submission; the tests check that the autograder
gives every question in it less than full marks (tests/test_exercises.py)."""

WRONG_ANSWERS = [
    {
        # rounds up: counts a last window that does not fit
        "q1": '''import math
def encoder_lengths(length, depth=6, kernel_size=8, stride=4):
    lengths = []
    for layer in range(depth):
        if length < kernel_size:
            raise ValueError(f"layer {layer + 1} gets {length} frames")
        length = math.ceil((length - kernel_size) / stride) + 1
        lengths.append(length)
    return lengths''',
        # divides by the stride times the depth instead of the stride to the power of the depth
        "q2": '''def frames_per_second(sample_rate=44100, depth=6, stride=4):
    return sample_rate / (stride * depth)''',
        # permutes to (batch, time, dim) but leaves nn.LSTM time-major: the batch becomes the time axis
        "q3": '''class BottleneckLSTM(nn.Module):
    def __init__(self, dim, layers=1):
        super().__init__()
        self.lstm = nn.LSTM(input_size=dim, hidden_size=dim, num_layers=layers, bidirectional=True)
        self.linear = nn.Linear(2 * dim, dim)

    def forward(self, x):
        x = self.lstm(x.permute(0, 2, 1))[0]
        return self.linear(x).permute(0, 2, 1)''',
    },
    {
        # divides by the stride at every layer and forgets the kernel
        "q1": '''def encoder_lengths(length, depth=6, kernel_size=8, stride=4):
    lengths = []
    for layer in range(depth):
        if length < kernel_size:
            raise ValueError(f"layer {layer + 1} gets {length} frames")
        length = length // stride
        lengths.append(length)
    return lengths''',
        # integer division: a whole number of frames per second
        "q2": '''def frames_per_second(sample_rate=44100, depth=6, stride=4):
    return float(sample_rate // stride ** depth)''',
        # reshapes with view instead of permuting: the numbers land on the wrong axes
        "q3": '''class BottleneckLSTM(nn.Module):
    def __init__(self, dim, layers=1):
        super().__init__()
        self.lstm = nn.LSTM(input_size=dim, hidden_size=dim, num_layers=layers, bidirectional=True)
        self.linear = nn.Linear(2 * dim, dim)

    def forward(self, x):
        batch, dim, time = x.shape
        y = self.linear(self.lstm(x.reshape(time, batch, dim))[0])
        return y.reshape(batch, dim, time)''',
    },
    {
        # no check of short inputs: lengths of 0 or less instead of an error
        "q1": '''def encoder_lengths(length, depth=6, kernel_size=8, stride=4):
    lengths = []
    for _ in range(depth):
        length = (length - kernel_size) // stride + 1
        lengths.append(length)
    return lengths''',
        # a forward-only LSTM whose output is copied to fill the Linear's input: no look at the future
        "q3": '''class BottleneckLSTM(nn.Module):
    def __init__(self, dim, layers=1):
        super().__init__()
        self.lstm = nn.LSTM(input_size=dim, hidden_size=dim, num_layers=layers, bidirectional=True)
        self.linear = nn.Linear(2 * dim, dim)

    def forward(self, x):
        dim = x.size(1)
        y = self.lstm(x.permute(2, 0, 1))[0][..., :dim]
        return self.linear(torch.cat([y, y], dim=-1)).permute(1, 2, 0)''',
    },
]

# Answers that only call the course's own code: the tests run the student's code inside
# demucs_course.grading_guard.own_work, so these fail (tests/test_exercises.py). Question 2 (a one-line formula)
# has no package function to call.
CALL_THROUGH = {
    # Demucs.lengths, one layer at a time (each layer's input trimmed to a length the model accepts)
    "q1": '''from demucs_course.model import Demucs
def encoder_lengths(length, depth=6, kernel_size=8, stride=4):
    with torch.device("meta"):
        layer = Demucs(channels=1, depth=1, kernel_size=kernel_size, stride=stride, context=1, lstm_layers=0)
    lengths = []
    for index in range(1, depth + 1):
        if length < kernel_size:
            raise ValueError(f"layer {index} gets {length} frames")
        length = layer.lengths(length - (length - kernel_size) % stride)[0][0]
        lengths.append(length)
    return lengths''',
    # the package's BLSTM under another name: same attributes, same state dict
    "q3": '''class BottleneckLSTM(BLSTM):
    pass''',
}
