"""Plausible wrong answers to exercise 3. Each dict is one wrong submission; the tests check that the autograder
gives every question in it less than full marks (tests/test_exercises.py). The answers to Question 2 use torch's
own GLU, so that they are wrong by themselves and not through a wrong `glu`."""

WRONG_ANSWERS = [
    {
        # the sigmoid on the wrong half: b * sigmoid(a)
        "q1": '''def glu(x):
    if x.size(1) % 2:
        raise ValueError("odd number of channels")
    a, b = x.chunk(2, dim=1)
    return b * torch.sigmoid(a)''',
        # forgets the ReLU after the strided convolution
        "q2": '''class EncoderLayer(nn.Module):
    def __init__(self, in_channels, channels, kernel_size=8, stride=4):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, channels, kernel_size, stride)
        self.rewrite = nn.Conv1d(channels, 2 * channels, 1)

    def forward(self, x):
        return nn.functional.glu(self.rewrite(self.conv(x)), dim=1)''',
        # rounds up: counts a last window that does not fit
        "q3": '''import math
def encoder_output_length(length, kernel_size=8, stride=4):
    if length < kernel_size:
        raise ValueError("too short")
    return math.ceil((length - kernel_size) / stride) + 1''',
    },
    {
        # splits over time (the last axis) instead of the channels
        "q1": '''def glu(x):
    if x.size(1) % 2:
        raise ValueError("odd number of channels")
    a, b = x.chunk(2, dim=-1)
    return a * torch.sigmoid(b)''',
        # kernel and stride swapped in the strided convolution
        "q2": '''class EncoderLayer(nn.Module):
    def __init__(self, in_channels, channels, kernel_size=8, stride=4):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, channels, stride, kernel_size)
        self.rewrite = nn.Conv1d(channels, 2 * channels, 1)

    def forward(self, x):
        return nn.functional.glu(self.rewrite(torch.relu(self.conv(x))), dim=1)''',
        # divides the length by the stride: forgets the window's own extent
        "q3": '''def encoder_output_length(length, kernel_size=8, stride=4):
    if length < kernel_size:
        raise ValueError("too short")
    return length // stride''',
    },
    {
        # no check of the channels: an odd count silently drops one
        "q1": '''def glu(x):
    c = x.size(1) // 2
    return x[:, :c] * torch.sigmoid(x[:, c:2 * c])''',
        # a ReLU after the GLU as well
        "q2": '''class EncoderLayer(nn.Module):
    def __init__(self, in_channels, channels, kernel_size=8, stride=4):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, channels, kernel_size, stride)
        self.rewrite = nn.Conv1d(channels, 2 * channels, 1)

    def forward(self, x):
        return torch.relu(nn.functional.glu(self.rewrite(torch.relu(self.conv(x))), dim=1))''',
        # forgets the + 1 and the error for short inputs
        "q3": '''def encoder_output_length(length, kernel_size=8, stride=4):
    return (length - kernel_size) // stride''',
    },
]

# Answers that only call the course's (or torch's) own code: the tests run the student's code inside
# demucs_course.grading_guard.own_work, so these fail (tests/test_exercises.py).
CALL_THROUGH = {
    # torch's GLU, which the exercise rules out, with the ValueError the tests ask for
    "q1": '''def glu(x):
    if x.size(1) % 2:
        raise ValueError("odd number of channels")
    return nn.functional.glu(x, dim=1)''',
    # the package's layer, its convolutions exposed under the names the tests load weights into
    "q2": '''class EncoderLayer(nn.Module):
    def __init__(self, in_channels, channels, kernel_size=8, stride=4):
        super().__init__()
        self.layer = encoder_layer(in_channels, channels, kernel_size, stride)
        self.conv, self.rewrite = self.layer[0], self.layer[2]

    def forward(self, x):
        return self.layer(x)''',
    # Demucs.lengths of a one-layer model
    "q3": '''from demucs_course.model import Demucs
def encoder_output_length(length, kernel_size=8, stride=4):
    if length < kernel_size:
        raise ValueError("shorter than the kernel")
    with torch.device("meta"):
        model = Demucs(channels=1, depth=1, kernel_size=kernel_size, stride=stride, context=1, lstm_layers=0)
    return model.lengths(length - (length - kernel_size) % stride)[0][0]''',
}
