"""profiles/slurm: the full DAG's resources on a machine without SLURM, and a slice of the workflow run through
sbatch on a real one-node SLURM cluster started by the test (tests/slurm_cluster.py)."""
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import load_config, scratch_copy, snakemake, write_config
from slurm_cluster import Cluster, ClusterBusy, install, missing_binaries


def dry_run_jobs(text):
    """(rule, wildcards, resources) of every job that `snakemake -n` printed."""
    jobs = []
    for block in re.split(r"\n(?=rule \w+:\n)", text)[1:]:
        rule = block.split(":", 1)[0].removeprefix("rule ")
        wildcards = re.search(r"^    wildcards: (.*)$", block, re.M)
        resources = re.search(r"^    resources: (.*)$", block, re.M)
        jobs.append((rule, wildcards.group(1) if wildcards else "",
                     dict(item.split("=", 1) for item in resources.group(1).split(", ")) if resources else {}))
    return jobs


def test_the_full_config_plans_through_the_slurm_profile_without_slurm_installed(tmp_path):
    # No sbatch, sinfo or squeue on PATH, as on a laptop or in CI: only `which`, which the plugin calls at import.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "which").symlink_to(shutil.which("which"))
    rc, text = snakemake("-n", "--forceall", "--profile", "profiles/slurm", "--configfile", "config/full.yaml",
                         timeout=300, env={**os.environ, "PATH": str(bin_dir)})
    assert rc == 0, text[-5000:]

    jobs = dry_run_jobs(text)
    train = [(wc, res) for rule, wc, res in jobs if rule == "optimus_train"]
    assert len(train) == 18
    for wildcards, res in train:
        label = re.search(r"device=(\w+)", wildcards).group(1)
        assert (res.get("slurm_partition"), res.get("gpu_model"), res["gpu"]) == (label, label, "1"), (
            f"{wildcards}: a run asks for its label's partition and GPU type (config/full.yaml devices.{label})")
        assert (res["runtime"], res["mem_mb"]) == ("1440", "16000"), wildcards
    peak = {wc: res for rule, wc, res in jobs if rule == "devices_peak"}
    assert {wc: (r.get("slurm_partition"), r.get("gpu_model"), r["runtime"]) for wc, r in peak.items()} == {
        f"device={label}": (label, label, "30") for label in ("k80", "p100", "v100")}
    # a job whose output is a time or a rate gets a node of its own, and asks for the one core it computes with
    from dlperf.timing import TIMING_RULES

    timing = [(rule, res) for rule, _, res in jobs if rule in TIMING_RULES]
    assert {rule for rule, _ in timing} == set(TIMING_RULES)
    for rule, res in timing:
        assert res.get("slurm_extra") == "--exclusive" and res["cpus_per_task"] == "1", (rule, res)
    # CPU-only work (downloads, data preparation, fits, figures) stays small and on the default partition
    cpu_rules = {rule for rule, _, res in jobs if "gpu" not in res} - set(TIMING_RULES)
    assert {"data_download", "data_prepare_cifar", "optimus_loss_fits", "flops_summary"} <= cpu_rules
    for rule, wildcards, res in jobs:
        if rule in cpu_rules and rule != "all":
            assert (res["slurm_partition"], res["runtime"], res["mem_mb"]) == ("cpu", "60", "2000"), (rule, wildcards)


# ---- a real cluster ----------------------------------------------------------------------------------------------
@pytest.fixture
def slurm_cluster(tmp_path_factory):
    """A running one-node cluster, installed with apt-get first if need be; its daemons are stopped afterwards,
    whether the test passed or not."""
    if os.geteuid() != 0:
        pytest.skip("the SLURM cluster test needs root: it apt-get installs slurm-wlm and munge, writes "
                    "/etc/slurm/slurm.conf and starts munged, slurmctld and slurmd")
    if missing_binaries():
        install()
    cluster = Cluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except ClusterBusy as err:
        pytest.skip(f"a SLURM test cluster is already running on this machine: {err}")
    try:
        yield cluster
    finally:
        cluster.stop()


def slice_config(path):
    """The embedded default, cut to minutes of work on 2 cores, plus a CUDA device label `fake` that maps to the
    cluster's `gpu` partition and its fake GPU type. With `device: auto` its jobs fall back to the CPU."""
    cfg = load_config()
    cfg["device"] = "auto"
    cfg["threads"] = 1  # two jobs at once on the two-CPU node
    cfg["devices"]["fake"] = {"accelerator": "cuda", "slurm_partition": "gpu", "gpu_model": "fake"}
    cfg["flops"]["models"] = ["resnet50"]
    cfg["peak"] = {"matmul_size": 256, "repeats": 2, "override_tflops": {}}
    return write_config(path, cfg)


@pytest.mark.slow
def test_a_data_job_and_a_gpu_job_run_through_sbatch_on_a_one_node_cluster(tmp_path, slurm_cluster):
    work = scratch_copy(tmp_path / "repo")
    config = slice_config(tmp_path / "slice.yaml")
    targets = ["results/flops/summary.csv", "results/devices/peak/fake.json"]
    # The profile as a user runs it; only the first status check comes sooner than its 40 s default.
    try:
        rc, text = snakemake("--profile", "profiles/slurm", "--configfile", str(config),
                             "--slurm-init-seconds-before-status-checks", "2", *targets, cwd=work, timeout=240)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"snakemake did not finish in 240 s:\n{err.stdout}\n{err.stderr}\n{slurm_cluster.log_tails()}")
    assert rc == 0, f"{text[-5000:]}\n{slurm_cluster.log_tails()}"

    summary = (work / "results/flops/summary.csv").read_text().splitlines()
    assert summary[0] == "model,params,gmacs,gflops,conv_share" and summary[1].startswith("resnet50,")
    peak = json.loads((work / "results/devices/peak/fake.json").read_text())
    assert peak["device_label"] == "fake" and peak["peak_flops"] > 0

    # Every job went through sbatch: the controller lists each, finished, with what the profile and the device
    # label asked for (partition, GPU, memory, time limit), and each left its log.
    jobs = {job["Comment"]: job for job in slurm_cluster.jobs()}
    assert set(jobs) == {"rule_flops_layers_wildcards_resnet50", "rule_flops_summary",
                         "rule_devices_peak_wildcards_fake"}, jobs
    assert {job["JobState"] for job in jobs.values()} == {"COMPLETED"}
    requests = {comment: (job["Partition"], job.get("TresPerJob"), job["MinMemoryNode"], job["TimeLimit"])
                for comment, job in jobs.items()}
    assert requests == {
        "rule_flops_layers_wildcards_resnet50": ("cpu", None, "2000M", "01:00:00"),
        "rule_flops_summary": ("cpu", None, "2000M", "01:00:00"),
        "rule_devices_peak_wildcards_fake": ("gpu", "gres:gpu:fake:1", "8000M", "00:30:00"),
    }
    logs = {log.stem for log in (work / ".snakemake" / "slurm_logs").rglob("*.log")}
    assert logs == {job["JobId"] for job in jobs.values()}
