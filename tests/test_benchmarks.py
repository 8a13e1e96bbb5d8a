"""Where a run's time went, per study, from Snakemake's benchmark files."""
import pandas as pd

from dlperf.report.benchmarks import job_seconds, study_seconds


def _benchmark(path, seconds):
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"s": [seconds], "h:m:s": ["0:00:00"], "cpu_time": [1.0]}).to_csv(path, sep="\t", index=False)


def test_job_seconds_are_summed_per_study_longest_study_first_with_a_total(tmp_path):
    _benchmark(tmp_path / "depth/train_vgg08.tsv", 10.0)
    _benchmark(tmp_path / "depth/train_vgg38.tsv", 30.0)
    _benchmark(tmp_path / "data/prepare_cifar10.tsv", 2.5)
    table = study_seconds(job_seconds(tmp_path))
    assert table.study.tolist() == ["depth", "data", "all"]
    assert table.jobs.tolist() == [2, 1, 3]
    assert table.job_seconds.tolist() == [40.0, 2.5, 42.5]
    assert table.longest_job.tolist() == ["train_vgg38", "prepare_cifar10", "depth/train_vgg38"]
