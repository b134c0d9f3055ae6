"""Plausible wrong answers to exercise 7. Each dict is one wrong submission; the tests check that the autograder
gives every question in it less than full marks (tests/test_exercises.py)."""

WRONG_ANSWERS = [
    {
        # trims the end of the sources instead of centering, and L2 without the square
        "q1": '''def separation_loss(estimates, sources, kind="l1"):
    target = sources[..., :estimates.shape[-1]]
    if kind == "l1":
        return (estimates - target).abs().mean()
    if kind == "l2":
        return (estimates - target).abs().mean()
    raise ValueError(kind)''',
        # never clears the gradients: they pile up across steps
        "q2": '''def training_step(model, sources, optimizer, kind="l1"):
    estimates = model(sources.sum(dim=1))
    loss = separation_loss(estimates, sources, kind)
    loss.backward()
    optimizer.step()
    return float(loss)''',
    },
    {
        # the loss as a Python number: no gradient flows
        "q1": '''def separation_loss(estimates, sources, kind="l1"):
    target = center_trim(sources, estimates)
    if kind not in ("l1", "l2"):
        raise ValueError(kind)
    error = (estimates - target).abs() if kind == "l1" else (estimates - target) ** 2
    return torch.tensor(float(error.mean()))''',
        # feeds the mean of the sources instead of their sum
        "q2": '''def training_step(model, sources, optimizer, kind="l1"):
    estimates = model(sources.mean(dim=1))
    loss = separation_loss(estimates, sources, kind)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss)''',
    },
]

# An answer that only calls the course's own train_step: the tests run the student's code inside
# demucs_course.grading_guard.own_work, so it fails (tests/test_exercises.py). Question 1 is told to use
# center_trim, and the course has no loss function of its own beyond torch's.
CALL_THROUGH = {
    "q2": '''from demucs_course.train import train_step
def training_step(model, sources, optimizer, kind="l1"):
    criterion = F.l1_loss if kind == "l1" else F.mse_loss
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    return train_step(model, sources, torch.nn.Identity(), optimizer, scaler, criterion, torch.device("cpu"), False)''',
}
