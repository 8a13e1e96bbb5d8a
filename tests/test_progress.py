"""Readable training progress (dlperf.train.progress): the per-epoch line, its ETA, and step bars only on a tty."""
import io
import re

import pytest
import torch
from tqdm import tqdm

from dlperf.models.cifar_resnet import cifar_model
from dlperf.train.data import DeviceImages
from dlperf.train.engine import seed_everything, train
from dlperf.train.progress import duration, epoch_line, eta_seconds, is_terminal, step_bar
from test_engine import tiny_config, tiny_data

LINE = re.compile(r"^\[(?P<run>[^\]]+)\] epoch (?P<epoch>\d+)/(?P<epochs>\d+)  loss (?P<loss>\S+)"
                  r"(?:  (?P<label>[\w ]*acc) (?P<acc>[\d.]+)%)?  (?P<ips>[\d,]+) img/s"
                  r"  elapsed (?P<elapsed>\d+:\d\d:\d\d)  ETA (?P<eta>\d+:\d\d:\d\d)$")


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_the_epoch_line_has_the_documented_format():
    assert (epoch_line("resnet20", 3, 10, 1.2341, 0.456, 1234.4, 62.0)
            == "[resnet20] epoch 3/10  loss 1.234  acc 45.6%  1,234 img/s  elapsed 0:01:02  ETA 0:02:25")
    assert (epoch_line("ssd", 1, 2, 5.0, None, 12.6, 3.0)
            == "[ssd] epoch 1/2  loss 5.000  13 img/s  elapsed 0:00:03  ETA 0:00:03")
    assert "  test acc 100.0%  " in epoch_line("r", 1, 1, 0.1, 1.0, 1.0, 1.0, acc_label="test acc")


def test_durations_are_h_mm_ss_and_unknown_ones_a_dash():
    assert [duration(s) for s in (0, 59.4, 59.6, 3600, 97384)] == ["0:00:00", "0:00:59", "0:01:00", "1:00:00",
                                                                   "27:03:04"]
    assert duration(None) == duration(float("nan")) == duration(-1) == "-"


def test_eta_is_the_mean_epoch_time_so_far_times_the_epochs_left():
    assert eta_seconds(60.0, 3, 7) == pytest.approx(140.0)
    assert eta_seconds(60.0, 3, 0) == 0.0
    assert eta_seconds(0.0, 0, 4) is None
    # by default every finished epoch counts: 4 epochs in 100 s, 6 left -> 150 s
    assert epoch_line("r", 4, 10, 1.0, None, 1.0, 100.0).endswith("elapsed 0:01:40  ETA 0:02:30")
    # after a resume only the epochs timed in this process set the rate: 2 epochs in 10 s, 6 left -> 30 s
    assert epoch_line("r", 4, 10, 1.0, None, 1.0, 100.0, timed=(10.0, 2)).endswith("ETA 0:00:30")
    assert epoch_line("r", 10, 10, 1.0, None, 1.0, 100.0).endswith("ETA 0:00:00")


def test_a_step_bar_is_a_tqdm_bar_on_a_terminal_only():
    batches = [1, 2, 3]
    terminal = FakeTerminal()
    bar = step_bar(batches, 3, "run epoch 1", terminal)
    assert isinstance(bar, tqdm)
    assert list(bar) == batches
    bar.close()
    assert "run epoch 1" in terminal.getvalue()
    assert step_bar(batches, 3, "x", io.StringIO()) is batches
    assert step_bar(batches, 3, "x", object()) is batches          # no isatty at all
    closed = io.StringIO()
    closed.close()
    assert not is_terminal(closed) and step_bar(batches, 3, "x", closed) is batches


def test_a_training_run_logged_to_a_file_writes_one_plain_line_per_epoch(tmp_path):
    torch.set_num_threads(1)
    x, y = tiny_data()
    seed_everything(3)
    log = io.StringIO()
    metrics = train(cifar_model("resnet8", num_classes=4), DeviceImages(x, y, "cpu"),
                    {"test": DeviceImages(x[:64], y[:64], "cpu")}, tiny_config(epochs=2), run_dir=tmp_path / "run",
                    state_dir=tmp_path / "state", run_name="tiny", log=log)
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 2, text
    for epoch, line in enumerate(lines, 1):
        match = LINE.match(line)
        assert match, line
        assert (match["run"], int(match["epoch"]), int(match["epochs"])) == ("tiny", epoch, 2)
        assert match["label"] == "test acc"
    last = LINE.match(lines[-1])
    assert float(last["loss"]) == pytest.approx(metrics["train_loss"], rel=1e-3)
    assert float(last["acc"]) == pytest.approx(100 * metrics["test_acc"], abs=0.05)
    assert last["eta"] == "0:00:00"


def test_a_training_run_on_a_terminal_shows_a_step_bar(tmp_path):
    torch.set_num_threads(1)
    x, y = tiny_data(n=64)
    seed_everything(3)
    log = FakeTerminal()
    train(cifar_model("resnet8", num_classes=4), DeviceImages(x, y, "cpu"), {}, tiny_config(epochs=1),
          run_dir=tmp_path / "run", state_dir=tmp_path / "state", run_name="tiny", log=log)
    text = log.getvalue()
    assert "tiny epoch 1" in text and "\r" in text              # the bar
    assert LINE.match(text.rsplit("\n", 2)[-2].split("\r")[-1]), text   # ... and the epoch line after it


def test_a_resumed_run_keeps_its_resume_message_and_lines_only_for_the_epochs_it_runs(tmp_path):
    torch.set_num_threads(1)
    x, y = tiny_data()

    class Killed(Exception):
        pass

    def kill_in_second_epoch(step, model):
        if step == 5:                       # 4 steps per epoch: the second epoch's second step
            raise Killed

    def run(log, after_backward=None):
        seed_everything(3)
        return train(cifar_model("resnet8", num_classes=4), DeviceImages(x, y, "cpu"),
                     {"test": DeviceImages(x[:64], y[:64], "cpu")}, tiny_config(epochs=3), run_dir=tmp_path / "run",
                     state_dir=tmp_path / "state", run_name="tiny", log=log, after_backward=after_backward)

    first = io.StringIO()
    with pytest.raises(Killed):
        run(first, kill_in_second_epoch)
    assert [LINE.match(line)["epoch"] for line in first.getvalue().splitlines()] == ["1"]
    second = io.StringIO()
    run(second)
    lines = second.getvalue().splitlines()
    assert lines[0].startswith("[tiny] resuming from epoch 1 (")
    assert [(LINE.match(line)["epoch"], LINE.match(line)["epochs"]) for line in lines[1:]] == [("2", "3"), ("3", "3")]
    assert "\r" not in second.getvalue()
