"""The benchmark's projection of the full Optimus study from measured images/s."""
import yaml

from dlperf.train.bench import project_optimus


def test_projection_is_epochs_times_images_over_rate_for_every_run(tmp_path):
    cfg = tmp_path / "full.yaml"
    cfg.write_text(yaml.safe_dump({"optimus": {"archs": ["resnet20", "resnet56"], "target_arch": "resnet50",
                                               "devices": ["k80", "v100"], "seeds": [0], "n_train": None,
                                               "train": {"epochs": 350}}}))
    df = project_optimus(cfg, {"resnet20": 1000.0, "resnet50": 500.0}, "cpu").set_index("arch")
    assert df.loc["resnet20", "hours_per_run"] == 350 * 50_000 / 1000 / 3600
    assert df.loc["resnet50", "device_hours"] == 2 * 350 * 50_000 / 500 / 3600
    assert "resnet56" not in df.index          # not measured: left out, and said so


def test_no_measured_arch_gives_no_projection(tmp_path):
    cfg = tmp_path / "full.yaml"
    cfg.write_text(yaml.safe_dump({"optimus": {"archs": ["resnet20"], "target_arch": "resnet50", "devices": ["k80"],
                                               "seeds": [0], "train": {"epochs": 1}}}))
    assert project_optimus(cfg, {"resnet8": 1.0}, "cpu") is None
