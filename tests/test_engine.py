"""The shared training engine: files it writes, determinism, resume after a kill, schedules, augmentation."""
import math
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dlperf.models.cifar_resnet import cifar_model
from dlperf.train.data import Augment, DeviceImages, batch_crop, batch_flip, epoch_generator
from dlperf.train.engine import NonFiniteLossError, TrainConfig, seed_everything, subnormals_flushed, train
from dlperf.train.schedule import Schedule

SRC = Path(__file__).resolve().parents[1] / "src"
TIMING_COLUMNS = {"seconds", "images_per_s", "epoch_seconds", "wall_seconds"}


def tiny_data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = (rng.integers(0, 60, (n, 32, 32, 3)) + 60 * y[:, None, None, None]).astype(np.uint8)
    return x, y


def tiny_config(**overrides):
    cfg = dict(epochs=3, batch_size=64, optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9},
               schedule={"name": "multistep", "milestones": [2], "gamma": 0.1},
               augment={"crop_padding": 2, "flip": True})
    cfg.update(overrides)
    return TrainConfig.from_config(cfg, seed=3)


def run_tiny(tmp_path, name="run", **overrides):
    torch.set_num_threads(1)
    x, y = tiny_data()
    seed_everything(3)
    model = cifar_model("resnet8", num_classes=4)
    metrics = train(model, DeviceImages(x, y, "cpu"), {"test": DeviceImages(x[:64], y[:64], "cpu")},
                    tiny_config(**overrides), run_dir=tmp_path / name, state_dir=tmp_path / name / "resume",
                    run_name=name)
    return metrics, tmp_path / name


def without_timing(df):
    return df.drop(columns=[c for c in df.columns if c in TIMING_COLUMNS])


def test_a_run_writes_steps_epochs_checkpoint_and_metrics_with_the_documented_columns(tmp_path):
    metrics, run = run_tiny(tmp_path)
    steps, epochs = pd.read_csv(run / "steps.csv"), pd.read_csv(run / "epochs.csv")
    assert list(steps.columns) == ["step", "epoch", "loss", "lr", "seconds"]
    assert steps.step.tolist() == list(range(1, 13))          # 256 / 64 = 4 steps x 3 epochs
    assert steps.epoch.tolist() == pytest.approx([k / 4 for k in range(1, 13)])
    assert list(epochs.columns[:6]) == ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc"]
    assert {"images_per_s", "epoch_seconds", "wall_seconds"} <= set(epochs.columns)
    assert epochs.lr.tolist() == pytest.approx([0.05, 0.05, 0.005])
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 3 and "conv1.weight" in state["model"]
    assert not (run / "resume").exists()                      # resumable state is cleared after success
    assert metrics["epoch"] == 3


def test_two_runs_with_the_same_seed_are_identical_on_cpu(tmp_path):
    _, a = run_tiny(tmp_path, "a")
    _, b = run_tiny(tmp_path, "b")
    pd.testing.assert_frame_equal(without_timing(pd.read_csv(a / "steps.csv")),
                                  without_timing(pd.read_csv(b / "steps.csv")))
    pd.testing.assert_frame_equal(without_timing(pd.read_csv(a / "epochs.csv")),
                                  without_timing(pd.read_csv(b / "epochs.csv")))


DRIVER = textwrap.dedent("""
    import sys, time, torch
    sys.path.insert(0, {src!r}); sys.path.insert(0, {tests!r})
    from test_engine import tiny_data, tiny_config
    from dlperf.models.cifar_resnet import cifar_model
    from dlperf.train.data import DeviceImages
    from dlperf.train.engine import seed_everything, train
    torch.set_num_threads(1)
    x, y = tiny_data()
    seed_everything(3)
    model = cifar_model("resnet8", num_classes=4)
    train(model, DeviceImages(x, y, "cpu"), {{"test": DeviceImages(x[:64], y[:64], "cpu")}},
          tiny_config(epochs=6), run_dir={run!r}, state_dir={run!r} + "/resume", run_name="killed")
""")


def test_a_killed_run_resumes_from_its_last_epoch_and_ends_as_an_uninterrupted_run(tmp_path):
    run = tmp_path / "killed"
    script = DRIVER.format(src=str(SRC), tests=str(Path(__file__).parent), run=str(run))
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "resume" / "last.pt").exists():   # kill -9 as soon as the first epoch is saved
        assert proc.poll() is None and time.time() < deadline, "driver ended before its first checkpoint"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "epochs.csv").exists(), "the run finished before it could be killed"

    resumed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from epoch" in resumed.stderr

    _, reference = run_tiny(tmp_path, "reference", epochs=6)
    pd.testing.assert_frame_equal(without_timing(pd.read_csv(run / "epochs.csv")),
                                  without_timing(pd.read_csv(reference / "epochs.csv")))
    pd.testing.assert_frame_equal(without_timing(pd.read_csv(run / "steps.csv")),
                                  without_timing(pd.read_csv(reference / "steps.csv")))


def test_resume_state_saved_for_another_configuration_is_ignored(tmp_path):
    x, y = tiny_data()
    seed_everything(3)
    run = tmp_path / "r"
    kwargs = dict(run_dir=run, state_dir=run / "resume", run_name="r")
    data, evals = DeviceImages(x, y, "cpu"), {"test": DeviceImages(x[:64], y[:64], "cpu")}
    train(cifar_model("resnet8", 4), data, evals, tiny_config(epochs=1), fingerprint="old", **kwargs)
    (run / "resume").mkdir()
    torch.save({"fingerprint": "old", "epoch": 1}, run / "resume" / "last.pt")
    log = run / "log.txt"
    with open(log, "w") as fh:
        train(cifar_model("resnet8", 4), data, evals, tiny_config(epochs=1), fingerprint="new", log=fh, **kwargs)
    assert "ignoring stale resume state" in log.read_text()


def test_a_diverging_run_stops_naming_the_run_and_the_step(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"run diverge: loss became (nan|inf) at step \d+"):
        run_tiny(tmp_path, "diverge", optimizer={"name": "sgd", "lr": float("inf")})


def test_frozen_parameters_are_not_updated(tmp_path):
    x, y = tiny_data()
    model = cifar_model("resnet8", 4)
    for p in model.parameters():
        p.requires_grad_(False)
    model.fc.weight.requires_grad_(True)
    model.fc.bias.requires_grad_(True)
    before = model.conv1.weight.detach().clone()
    train(model, DeviceImages(x, y, "cpu"), {}, tiny_config(epochs=1), run_dir=tmp_path / "f",
          state_dir=tmp_path / "f" / "resume", run_name="f")
    assert torch.equal(model.conv1.weight, before)


def test_a_cpu_run_flushes_subnormals_while_it_lasts_and_leaves_ieee_arithmetic_behind(tmp_path):
    smallest_normal = sys.float_info.min
    seen = []
    x, y = tiny_data(64)
    train(cifar_model("resnet8", 4), DeviceImages(x, y, "cpu"), {}, tiny_config(epochs=1), run_dir=tmp_path / "s",
          state_dir=tmp_path / "s" / "resume", run_name="s",
          after_backward=lambda step, model: seen.append(smallest_normal / 2))
    assert seen and set(seen) == {0.0}                         # flushed during the steps
    assert smallest_normal / 2 > 0.0                           # subnormals are back once the run returns


def test_subnormals_flushed_keeps_a_mode_it_found_on():
    with subnormals_flushed():
        with subnormals_flushed():
            pass
        assert sys.float_info.min / 2 == 0.0
    assert sys.float_info.min / 2 > 0.0


def test_multistep_per_epoch_drops_exactly_at_the_milestones():
    s = Schedule(name="multistep", milestones=(2, 4, 6), gamma=0.1, step_per="epoch")
    lrs = [s.lr(1.0, it, steps_per_epoch=10) for it in range(80)]
    drops = [i for i in range(1, 80) if lrs[i] < lrs[i - 1]]
    assert drops == [20, 40, 60]
    assert lrs[-1] == pytest.approx(1e-3)


def test_cosine_per_iteration_matches_the_closed_form_and_torch():
    s = Schedule(name="cosine", t_max=100, eta_min=2e-5, step_per="iteration")
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=1e-3)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100, eta_min=2e-5)
    for it in range(450):   # past T_max: the coursework's per-iteration stepping keeps oscillating
        expected = 2e-5 + (1e-3 - 2e-5) * (1 + math.cos(math.pi * it / 100)) / 2
        assert s.lr(1e-3, it, steps_per_epoch=475) == pytest.approx(expected, rel=1e-12)
        assert opt.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-6, abs=1e-12)
        opt.step()
        ref.step()


def test_batch_crop_takes_the_window_at_each_images_random_offset():
    images = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    gen = epoch_generator(0, 0, torch.device("cpu"))
    state = gen.get_state()
    out = batch_crop(images, 1, gen)
    gen.set_state(state)
    oy = torch.randint(0, 3, (2,), generator=gen)
    ox = torch.randint(0, 3, (2,), generator=gen)
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    for i in range(2):
        assert torch.equal(out[i], padded[i, :, oy[i]:oy[i] + 4, ox[i]:ox[i] + 4])


def test_batch_flip_mirrors_about_half_of_the_images():
    images = torch.randn(1000, 3, 4, 4)
    out = batch_flip(images, epoch_generator(0, 0, torch.device("cpu")))
    flipped = [torch.equal(o, i.flip(2)) for o, i in zip(out, images)]
    kept = [torch.equal(o, i) for o, i in zip(out, images)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 400 < sum(flipped) < 600


def test_an_epochs_batches_depend_only_on_seed_and_epoch():
    x, y = tiny_data()
    data = DeviceImages(x, y, "cpu")
    aug = Augment(crop_padding=2, flip=True)
    first = [b[1] for b in data.batches(64, shuffle=True, augment=aug, seed=1, epoch=5)]
    again = [b[1] for b in data.batches(64, shuffle=True, augment=aug, seed=1, epoch=5)]
    other = [b[1] for b in data.batches(64, shuffle=True, augment=aug, seed=1, epoch=6)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_cifar_resnet_parameter_counts_match_he_et_al():
    def count(arch):
        return sum(p.numel() for p in cifar_model(arch).parameters())
    assert round(count("resnet20") / 1e6, 2) == 0.27
    assert round(count("resnet32") / 1e6, 2) == 0.46
    assert round(count("resnet44") / 1e6, 2) == 0.66
    assert round(count("resnet56") / 1e6, 2) == 0.85
    assert round(count("resnet110") / 1e6, 1) == 1.7
    assert cifar_model("resnet18")(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert cifar_model("resnet50")(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="6n\\+2"):
        cifar_model("resnet21")


@pytest.mark.parametrize(("arch", "blocks"), [("resnet20", 9), ("resnet50", 16)])
def test_zero_init_residual_zeroes_the_last_batchnorm_scale_of_every_residual_branch_and_nothing_else(arch, blocks):
    from dlperf.models.cifar_resnet import zero_init_residual

    model = zero_init_residual(cifar_model(arch, width=8))
    zeroed = [name for name, m in model.named_modules()
              if isinstance(m, torch.nn.BatchNorm2d) and not m.weight.any()]
    assert len(zeroed) == blocks
    assert all(name.endswith("bn3" if arch == "resnet50" else "bn2") for name in zeroed)
