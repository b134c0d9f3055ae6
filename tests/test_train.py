"""Chapter 7: the training loop, its presets, checkpoints that survive, and exact resumption.

The runs here are tiny (4 channels, depth 3, 0.5-s extracts, 4 steps an epoch on the 6-s tracks of ``toy_root``), so
the whole file takes seconds; they train for real through the same ``train`` the presets use.
"""

import os

import matplotlib
import numpy as np
import pytest
import torch

from demucs_course.augment import default_augment
from demucs_course.cli import main as cli_main
from demucs_course.model import Demucs
from demucs_course.checkpoints import export_model, rng_states, save_atomic, set_rng_states
from demucs_course.loading import load_checkpoint, pick_device, read_checkpoint
from demucs_course.presets import LOSSES, PRESETS, TrainConfig, preset
from demucs_course.train import epoch_batches, plot_history, train, train_step

matplotlib.use("Agg")

SMALL = dict(channels=4, depth=3, lstm_layers=1)


def small_config(toy_root, folder, **overrides) -> TrainConfig:
    values = dict(model=dict(SMALL), data=str(toy_root), segment=0.5, shift=0.1, stride=1.0, batch_size=4, epochs=2,
                  checkpoint_dir=str(folder), save_every_steps=0, seed=0, device="cpu")
    return TrainConfig(**{**values, **overrides})


class Disconnect(Exception):
    """Raised from a callback: training stops there, as when a Colab runtime goes away."""


def disconnect_at(global_step):
    def callback(record):
        if record["global_step"] == global_step:
            raise Disconnect(f"gone after step {global_step}")
    return callback


@pytest.fixture(scope="module", autouse=True)
def track_cache(tmp_path_factory):
    """The runs cache their tracks in a temporary folder, not in the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEMUCS_COURSE_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def straight(toy_root, tmp_path_factory):
    """Two epochs in one go: the run every interrupted run must reproduce."""
    return train(small_config(toy_root, tmp_path_factory.mktemp("straight")), progress=False)


def same_run(a: dict, b: dict) -> None:
    """Two histories that are the same run: the same losses at every step, the same validation losses."""
    np.testing.assert_allclose(a["step_loss"], b["step_loss"], rtol=1e-6, atol=0)
    np.testing.assert_allclose([e["valid"] for e in a["epochs"]], [e["valid"] for e in b["epochs"]], rtol=1e-6)
    assert [e["epoch"] for e in a["epochs"]] == [e["epoch"] for e in b["epochs"]]


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7, msg=name)


# --- configuration -----------------------------------------------------------------------------------------------


def test_a_batch_size_that_is_not_a_multiple_of_the_remix_group_is_refused(toy_root, tmp_path):
    with pytest.raises(ValueError, match=r"multiple of the Remix group_size \(4\).*8"):
        train(small_config(toy_root, tmp_path, batch_size=6), progress=False)
    assert not any(tmp_path.iterdir()), "nothing is written before the settings are checked"


@pytest.mark.parametrize("change, message", [
    (dict(stride=1.0, per_minute=2.0), "exactly one of stride"),
    (dict(stride=None, per_minute=None), "exactly one of stride"),
    (dict(loss="sdr"), "loss must be one of"),
    (dict(data=None), "data is not set"),
    (dict(epochs=0), "epochs must be a positive integer"),
    (dict(repitch=1.5), "repitch is a probability"),
])
def test_bad_settings_say_what_to_change(toy_root, tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        small_config(toy_root, tmp_path, **change).check()


def test_an_epoch_smaller_than_one_batch_is_refused(toy_root, tmp_path):
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(small_config(toy_root, tmp_path, batch_size=64), progress=False)


def test_presets():
    tiny, t4, paper = (PRESETS[name] for name in ("tiny-cpu", "colab-t4", "paper"))
    tiny.check()
    assert tiny.data == "toy" and tiny.loss == "l1" and TrainConfig().lr == 3e-4 == t4.lr == paper.lr
    assert t4.model["channels"] == 64 and t4.batch_size == 8 and t4.per_minute == 1.25 and t4.stride is None
    assert paper.model["channels"] == 100 and paper.batch_size == 64 and paper.epochs == 120
    assert paper.stride == 1.0 and paper.segment == 10.0 and paper.shift == 1.0
    for config in (t4, paper):        # they need a MUSDB18 root
        with pytest.raises(ValueError, match="data is not set"):
            config.check()
        preset("paper", data="/data/musdb18hq").check()
    changed = preset("colab-t4", model=dict(channels=48), batch_size=4)
    assert changed.model == {"channels": 48} and changed.batch_size == 4 and PRESETS["colab-t4"].batch_size == 8
    with pytest.raises(ValueError, match="unknown preset"):
        preset("v100")
    sampled = PRESETS["sampled-cpu"]
    sampled.check()
    assert sampled.data == "sampled" and sampled.loss == "l1"


def test_repitch_takes_longer_extracts_that_come_out_at_the_model_s_length(toy_root, tmp_path):
    from demucs_course.augment import Repitch
    from demucs_course.data import load_tracks
    from demucs_course.model import Demucs
    from demucs_course.presets import seconds_to_samples
    from demucs_course.train import make_dataset

    config = small_config(toy_root, tmp_path, repitch=0.2)
    model = Demucs(**config.model)
    tracks = load_tracks(toy_root, "train", "train")
    plain = make_dataset(small_config(toy_root, tmp_path), model, tracks)[0].shape[-1]
    longer = make_dataset(config, model, tracks)[0].shape[-1]
    assert longer > plain and Repitch(0.2).output_length(longer) == plain
    assert plain == model.valid_length(seconds_to_samples(config.segment)) + seconds_to_samples(config.shift)


def test_device_choice():
    assert pick_device("auto").type in ("cuda", "mps", "cpu")
    if not torch.cuda.is_available():
        assert pick_device("auto").type in ("mps", "cpu")
        with pytest.raises(ValueError, match="no CUDA GPU"):
            pick_device("cuda")


# --- the pieces of the loop --------------------------------------------------------------------------------------


def test_epoch_batches_are_full_reproducible_and_new_each_epoch():
    first = epoch_batches(18, 4, seed=0, epoch=0)
    assert len(first) == 4 and all(len(b) == 4 for b in first)
    flat = [i for b in first for i in b]
    assert len(set(flat)) == 16 and set(flat) <= set(range(18))
    assert first == epoch_batches(18, 4, seed=0, epoch=0)
    assert first != epoch_batches(18, 4, seed=0, epoch=1)
    assert first != epoch_batches(18, 4, seed=1, epoch=0)


def test_rng_states_round_trip_through_a_checkpoint_file(tmp_path):
    import random

    states = rng_states()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    save_atomic({"rng": states}, tmp_path / "rng.pt")
    torch.rand(5), np.random.rand(5), random.random()
    set_rng_states(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1]) and expected[2] == again[2]


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_a_train_step_fits_a_batch(loss):
    """Repeated steps on one batch drive its loss down at every step: the gradients point the right way."""
    torch.manual_seed(0)
    model = Demucs(**SMALL)
    shift = 441
    length = model.valid_length(8820) + shift
    batch = torch.randn(4, 4, 2, length) * torch.tensor([1.0, 0.5, 0.3, 0.8])[:, None, None]
    augment = default_augment(shift, 4).eval()      # the same batch every step
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    device = torch.device("cpu")
    losses = [train_step(model, batch, augment, optimizer, scaler, LOSSES[loss], device, False) for _ in range(6)]
    assert all(after < before for before, after in zip(losses, losses[1:])), losses


# --- whole runs, and resuming them ---------------------------------------------------------------------------------


def test_a_run_validates_every_epoch_and_keeps_the_best_model(straight):
    epochs = straight.history["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert len(straight.history["step_loss"]) == 8          # 3 tracks x 6 extracts = 18 -> 4 batches of 4, 2 epochs
    assert all(e["valid"] > 0 and np.isfinite(e["valid"]) for e in epochs)
    best = read_checkpoint(straight.checkpoint_dir / "best.pt")
    assert best["epoch"] == min(epochs, key=lambda e: e["valid"])["epoch"] == straight.best["epoch"]
    same_weights(straight.model, load_checkpoint(straight.checkpoint_dir / "best.pt"))
    last = read_checkpoint(straight.checkpoint_dir / "last.pt")
    assert last["epoch"] == 2 and last["step"] == 0 and last["kind"] == "training"
    assert not straight.model.training and next(straight.model.parameters()).dtype == torch.float32


def test_one_epoch_then_resume_is_the_same_run_as_two_epochs(toy_root, tmp_path, straight):
    train(small_config(toy_root, tmp_path, epochs=1), progress=False)
    assert read_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    resumed = train(small_config(toy_root, tmp_path, epochs=2), progress=False)
    same_run(straight.history, resumed.history)
    same_weights(straight.model, resumed.model)
    same_weights(load_checkpoint(straight.checkpoint_dir / "last.pt"), load_checkpoint(tmp_path / "last.pt"))


def test_a_run_cut_mid_epoch_resumes_from_its_step_checkpoint(toy_root, tmp_path, straight):
    config = small_config(toy_root, tmp_path, save_every_steps=2)
    with pytest.raises(Disconnect):
        train(config, progress=False, callback=disconnect_at(7))    # epoch 2, after its 3rd step
    state = read_checkpoint(tmp_path / "last.pt")
    assert (state["epoch"], state["step"]) == (1, 2)                 # the step checkpoint after global step 6
    assert len(state["history"]["step_loss"]) == 6 and len(state["data"]["batches"]) == 4
    (tmp_path / ".last.pt.abc123.tmp").write_bytes(b"half a checkpoint")   # a save killed mid-write
    resumed = train(config, progress=False)
    same_run(straight.history, resumed.history)
    same_weights(straight.model, resumed.model)


def test_resuming_with_other_settings_is_refused_before_anything_is_loaded(toy_root, straight):
    config = small_config(toy_root, straight.checkpoint_dir, lr=1e-3)
    with pytest.raises(ValueError, match=r"other settings \(lr: 0.0003 -> 0.001\)"):
        train(config, progress=False)


def test_a_time_limit_stops_after_an_epoch_and_validates_it(toy_root, tmp_path, straight):
    (tmp_path / "last.pt").write_bytes((straight.checkpoint_dir / "last.pt").read_bytes())
    config = small_config(toy_root, tmp_path, epochs=50, loss="l2", valid_every=10)
    ticks = iter(range(0, 1000, 10))                                        # a clock that reads 0, 10, 20, ...
    result = train(config, resume=False, progress=False, time_limit=15, clock=lambda: next(ticks))
    # after epoch 1 the clock says 10: one more epoch would end at 20, past 15, so it stops (resume=False: anew)
    assert len(result.history["epochs"]) == 1 and result.history["epochs"][0]["valid"] is not None
    state = read_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 1 and state["config"]["loss"] == "l2"          # the old run's file is replaced


# --- saving and loading ------------------------------------------------------------------------------------------


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("the process died while writing")


def test_a_save_that_fails_midway_leaves_the_last_good_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    save_atomic({"step": 1, "weights": torch.ones(1000)}, path)
    with pytest.raises(RuntimeError, match="died while writing"):
        save_atomic({"step": 2, "weights": torch.zeros(1000), "z": Unpicklable()}, path)
    kept = torch.load(path, weights_only=True)
    assert kept["step"] == 1 and torch.equal(kept["weights"], torch.ones(1000))
    assert sorted(os.listdir(tmp_path)) == ["last.pt"], "the temporary file is removed"


def test_loading_errors_are_clear(tmp_path, straight):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint in the folder"):
        load_checkpoint(tmp_path)
    whole = (straight.checkpoint_dir / "best.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save({"weights": torch.ones(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a demucs_course checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_a_folder_loads_its_best_model_and_an_export_is_small_and_float32_again(tmp_path, straight):
    model = load_checkpoint(straight.checkpoint_dir)
    same_weights(model, straight.model)
    exported = export_model(straight.checkpoint_dir, tmp_path / "small.pt", metadata={"note": "test"})
    assert exported.stat().st_size < 0.7 * (straight.checkpoint_dir / "best.pt").stat().st_size
    assert read_checkpoint(exported)["model"]["encoder.0.0.weight"].dtype == torch.float16
    small = load_checkpoint(exported)
    assert next(small.parameters()).dtype == torch.float32 and not small.training
    mix = torch.randn(1, 2, model.valid_length(4410))
    with torch.no_grad():
        torch.testing.assert_close(small(mix), model(mix), rtol=1e-2, atol=2e-3)


def test_loss_curves_are_a_figure(straight):
    fig = plot_history(straight.history, label="L1")
    ax = fig.axes[0]
    assert len(ax.lines) == 4 and ax.get_xlabel() == "epoch"
    np.testing.assert_allclose(ax.lines[2].get_ydata(), [e["valid"] for e in straight.history["epochs"]])
    with pytest.raises(ValueError, match="no finished epoch"):
        plot_history({"step_loss": [], "epochs": []})


def test_the_train_command(toy_root, tmp_path, capsys):
    folder = tmp_path / "run"
    code = cli_main(["train", "--preset", "tiny-cpu", "--data", str(toy_root), "--epochs", "1", "--channels", "4",
                     "--segment", "0.5", "--shift", "0.1", "--loss", "l2", "--checkpoint-dir", str(folder),
                     "--seed", "3", "--device", "cpu", "--no-progress"])
    assert code == 0
    config = read_checkpoint(folder / "last.pt")["config"]
    assert config["model"]["channels"] == 4 and config["loss"] == "l2" and config["seed"] == 3
    assert config["model"]["depth"] == PRESETS["tiny-cpu"].model["depth"]
    assert "best validation" in capsys.readouterr().out
    assert cli_main(["train", "--preset", "tiny-cpu", "--batch-size", "6", "--checkpoint-dir", str(folder)]) == 2
    assert "multiple of the Remix group_size" in capsys.readouterr().err


def test_a_checkpoint_written_before_a_setting_existed_resumes_with_its_default():
    from demucs_course.checkpoints import config_differences

    config = TrainConfig()
    saved = config.to_dict()
    del saved["repitch"]                       # written before Repitch was a setting
    assert config_differences(saved, config) == []
    assert config_differences(saved, TrainConfig(repitch=0.2)) == ["repitch: 0.0 -> 0.2"]
