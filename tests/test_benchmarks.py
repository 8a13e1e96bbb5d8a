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


LOG = """\
[Sat Dec  5 18:28:38 2026]
localrule devices_peak:
    output: results/devices/peak/cpu.json
    jobid: 17
    threads: 2
Select jobs to execute...
[Sat Dec  5 18:28:40 2026]
Finished jobid: 17 (Rule: devices_peak)
1 of 4 steps (25%) done

[Sat Dec  5 18:28:40 2026]
rule depth_train:
    jobid: 3
    wildcards: model=vgg08
[Sat Dec  5 18:28:41 2026]
localrule flops_measure:
    jobid: 5
[Sat Dec  5 18:28:50 2026]
Finished jobid: 5 (Rule: flops_measure)
[Sat Dec  5 18:29:40 2026]
Finished jobid: 3 (Rule: depth_train)
[Sat Dec  5 18:29:40 2026]
localrule transfer_timing:
    jobid: 8
[Sat Dec  5 18:29:45 2026]
Finished jobid: 8 (Rule: transfer_timing)
"""


def test_job_intervals_come_from_snakemakes_log_and_overlaps_name_the_job_beside_a_timing_job(tmp_path):
    from dlperf.report.benchmarks import job_intervals, overlaps

    (tmp_path / "run.log").write_text(LOG)
    intervals = job_intervals(tmp_path / "run.log")
    assert [(iv.rule, iv.jobid, (iv.end - iv.start).seconds) for iv in intervals] == [
        ("devices_peak", 17, 2), ("flops_measure", 5, 9), ("depth_train", 3, 60), ("transfer_timing", 8, 5)]
    # devices_peak ended in the second depth_train began, and transfer_timing began in the second it ended: alone
    pairs = overlaps(intervals, ("devices_peak", "flops_measure", "transfer_timing"))
    assert [(a.rule, b.rule) for a, b in pairs] == [("flops_measure", "depth_train")]


def test_a_timing_job_computes_at_its_measure_threads_and_records_the_cores_busy_beside_it():
    import time

    import torch

    from dlperf.timing import TimedAlone

    class Params(dict):
        get = dict.get

    class Job:
        params, threads = Params(measure_threads=1), 2

    timed = TimedAlone(Job())
    assert torch.get_num_threads() == 1
    deadline = time.monotonic() + 0.5   # /proc/stat counts in clock ticks (10 ms): busy for 50 of them
    while time.monotonic() < deadline:
        pass
    record = timed.record()
    assert record["threads"] == 1 and record["cores_held"] == 2
    assert record["busy_cores"] is not None and record["busy_cores"] > 0
    assert 0 <= record["other_cores"] <= record["busy_cores"]
    assert record["alone"] == (record["other_cores"] <= 0.5)


def test_a_timing_job_that_holds_every_core_still_sees_a_process_that_ran_beside_it():
    """Busy cores alone cannot tell: a job that holds every core never sees more of them busy than it holds. What the
    job and its ended children did not spend is what ran beside it; here another process spins for the whole job."""
    import subprocess
    import sys
    import time

    from dlperf.timing import TimedAlone
    from dlperf.workflow import available_cores

    class Params(dict):
        get = dict.get

    class Job:
        params, threads = Params(), available_cores()

    timed = TimedAlone(Job())
    other = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)   # the job itself idles: the spinning process is all the machine's extra work
        record = timed.record()
    finally:
        other.kill()
        other.wait()
    assert record["threads"] == record["cores_held"] == available_cores()
    assert record["other_cores"] > 0.5 and not record["alone"], record
