"""Plausible wrong answers to exercise 6. Each dict is one wrong submission; the tests check that the autograder
gives every question in it less than full marks (tests/test_exercises.py). The answers to Question 2 rescale each
module correctly themselves, so that they are wrong by the modules they choose and not through a wrong
`rescale_conv`."""

_RESCALE = '''def _rescale(module, reference):
    scale = (module.weight.detach().std() / reference) ** 0.5
    module.weight.data /= scale
    if module.bias is not None:
        module.bias.data /= scale

'''

WRONG_ANSWERS = [
    {
        # divides by scale ** 2: the std lands on the reference itself instead of halfway
        "q1": '''def rescale_conv(conv, reference=0.1):
    if not reference > 0:
        raise ValueError("reference must be positive")
    scale = (conv.weight.detach().std() / reference) ** 0.5
    conv.weight.data /= scale ** 2
    if conv.bias is not None:
        conv.bias.data /= scale ** 2''',
        # rescales every module with a weight: the bottleneck's Linear too
        "q2": _RESCALE + '''def rescale_model(model, reference=0.1):
    for module in model.modules():
        if isinstance(getattr(module, "weight", None), torch.Tensor):
            _rescale(module, reference)''',
    },
    {
        # forgets the bias
        "q1": '''def rescale_conv(conv, reference=0.1):
    if not reference > 0:
        raise ValueError("reference must be positive")
    scale = (conv.weight.detach().std() / reference) ** 0.5
    conv.weight.data /= scale''',
        # Conv1d only: ConvTranspose1d is not a subclass of it, so the decoder's upsampling is missed
        "q2": _RESCALE + '''def rescale_model(model, reference=0.1):
    for module in model.modules():
        if isinstance(module, nn.Conv1d):
            _rescale(module, reference)''',
    },
    {
        # not in place: returns a rescaled copy and leaves the model's convolution as it was
        "q1": '''def rescale_conv(conv, reference=0.1):
    if not reference > 0:
        raise ValueError("reference must be positive")
    conv = copy.deepcopy(conv)
    scale = (conv.weight.detach().std() / reference) ** 0.5
    conv.weight.data /= scale
    if conv.bias is not None:
        conv.bias.data /= scale
    return conv''',
        # rescales every parameter tensor of the model, the LSTM's included
        "q2": '''def rescale_model(model, reference=0.1):
    for p in model.parameters():
        if p.dim() > 1:
            scale = (p.detach().std() / reference) ** 0.5
            p.data /= scale''',
    },
    {
        # the biased std (numpy's default) instead of torch's, and no check of the reference
        "q1": '''def rescale_conv(conv, reference=0.1):
    scale = (conv.weight.detach().std(unbiased=False) / reference) ** 0.5
    conv.weight.data /= scale
    if conv.bias is not None:
        conv.bias.data /= scale''',
        # only the model's direct children: the convolutions sit one level deeper, inside the Sequentials
        "q2": _RESCALE + '''def rescale_model(model, reference=0.1):
    for module in model.children():
        if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
            _rescale(module, reference)''',
    },
]

# Answers that only call the course's own rescale_module: the tests run the student's code inside
# demucs_course.grading_guard.own_work, so these fail (tests/test_exercises.py).
CALL_THROUGH = {
    "q1": '''def rescale_conv(conv, reference=0.1):
    if not reference > 0:
        raise ValueError("reference must be positive")
    rescale_module(conv, reference)''',
    "q2": '''rescale_model = rescale_module''',
}
