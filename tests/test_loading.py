"""Loading a model and picking a device (Chapters 7-9): below inference, evaluation and training alike."""

import subprocess
import sys

import pytest
import torch

from demucs_course import InputError
from demucs_course.checkpoints import save_atomic
from demucs_course.loading import (CHECKPOINT_FORMAT, DEFAULT_MODEL, PRETRAINED_MODELS, CheckpointError,
                                   CheckpointNotFoundError, load_checkpoint, load_pretrained, pick_device,
                                   pretrained_info, pretrained_path)
from demucs_course.model import Demucs

#: The modules that exist for training: inference and evaluation must run without importing any of them.
TRAINING_MODULES = ("demucs_course.train", "demucs_course.presets", "demucs_course.checkpoints",
                    "demucs_course.augment")


@pytest.mark.parametrize("module", ["demucs_course.separate", "demucs_course.evaluate", "demucs_course.loading"])
def test_inference_imports_no_training_module(module):
    """In a fresh interpreter (this one has imported everything already)."""
    code = (f"import sys, {module}\n"
            f"print(sorted(m for m in sys.modules if m in {TRAINING_MODULES!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"{module} imported training modules: {done.stdout.strip()}"


def test_loading_and_presets_are_not_reached_through_train():
    """Each name has one home: loading a model or sizing a run is not imported from the training loop."""
    import demucs_course.train as train

    for name in ("load_pretrained", "pretrained_info", "PRETRAINED_DIR", "PRESETS", "preset", "export_model",
                 "median_sdr", "flops_per_example", "memory_estimate"):
        assert not hasattr(train, name), f"demucs_course.train.{name}: import it from its own module"


def test_pick_device_errors_are_input_errors():
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(InputError, match="unknown device 'gpu'"):
        pick_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA GPU"):
            pick_device("cuda")


def test_load_checkpoint_round_trip_and_errors(tmp_path):
    torch.manual_seed(0)
    model = Demucs(channels=4, depth=2, lstm_layers=1)
    state = {"format": CHECKPOINT_FORMAT, "kind": "model", "model": model.state_dict(),
             "config": {"model": dict(channels=4, depth=2, lstm_layers=1)}, "history": {}}
    path = save_atomic(state, tmp_path / "run" / "best.pt")
    loaded = load_checkpoint(tmp_path / "run")               # a folder: its best.pt
    assert not loaded.training
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    with pytest.raises(CheckpointNotFoundError, match="does not exist") as missing:
        load_checkpoint(tmp_path / "none.pt")
    assert isinstance(missing.value, FileNotFoundError) and isinstance(missing.value, InputError)
    (tmp_path / "broken.pt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "broken.pt")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a demucs_course checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


@pytest.mark.parametrize("name", list(PRETRAINED_MODELS))
def test_the_shipped_models_and_their_records(name):
    assert pretrained_path(name).is_file() and pretrained_path(name, ".json").is_file()
    model = load_pretrained(name=name)
    assert isinstance(model, Demucs) and not model.training
    assert next(model.parameters()).dtype == torch.float32
    assert pretrained_info(name)["config"]["data"] == PRETRAINED_MODELS[name]


def test_the_default_model_is_the_sampled_one_and_an_unknown_name_is_refused():
    assert DEFAULT_MODEL == "sampled" and pretrained_info()["config"]["data"] == "sampled"
    with pytest.raises(InputError, match=f"ships {', '.join(PRETRAINED_MODELS)}"):
        load_pretrained(name="musdb")
