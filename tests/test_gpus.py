"""One job per GPU: each job on a CUDA label takes a GPU id of its own (dlperf.gpus), tested without a GPU."""
import json
import os
import subprocess
import sys

import pytest
from conftest import load_config, scratch_copy, snakemake, write_config

from dlperf.gpus import ledger_windows
from dlperf.report.benchmarks import job_intervals

CLAIM = """
import os, sys, time
from dlperf.gpus import claim_gpu
gpu = claim_gpu(timeout_s=float(sys.argv[1]))
print(gpu, os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
time.sleep(float(sys.argv[2]))
"""


def _claim(env, timeout_s=0.0, hold_s=0.0):
    return subprocess.Popen([sys.executable, "-c", CLAIM, str(timeout_s), str(hold_s)], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_concurrent_jobs_take_distinct_gpus_and_one_too_many_is_told_why(tmp_path):
    env = {"DLPERF_GPU_IDS": "0,1", "DLPERF_GPU_LOCK_DIR": str(tmp_path)}
    holders = [_claim(env, hold_s=3) for _ in range(2)]
    seen = {holder.stdout.readline().split()[0] for holder in holders}
    assert seen == {"0", "1"}
    third = _claim(env, timeout_s=0.5)
    _, err = third.communicate(timeout=60)
    assert third.returncode != 0 and "no free GPU among ['0', '1']" in err
    for holder in holders:
        holder.wait(timeout=60)
    # the locks died with their processes: both GPUs are free again
    out, _ = _claim(env).communicate(timeout=60)
    assert out.split()[0] == "0"


def test_the_users_cuda_visible_devices_are_respected(tmp_path):
    env = {"CUDA_VISIBLE_DEVICES": "GPU-5f2a,GPU-77c1", "DLPERF_GPU_LOCK_DIR": str(tmp_path)}
    holder = _claim({**env, "DLPERF_GPU_IDS": ""}, hold_s=2)
    first = holder.stdout.readline().split()
    second, _ = _claim({**env, "DLPERF_GPU_IDS": ""}).communicate(timeout=60)
    holder.wait(timeout=60)
    assert first == ["GPU-5f2a", "GPU-5f2a"] and second.split() == ["GPU-77c1", "GPU-77c1"]


@pytest.mark.slow
def test_four_simulated_gpus_never_host_two_overlapping_training_jobs(tmp_path):
    """The workflow's own GPU rules, concurrently on 4 fake GPUs (the device forced to the CPU, the ids real)."""
    work = scratch_copy(tmp_path / "repo")
    cfg = load_config()
    cfg["device"] = "cuda"   # what a CUDA label runs on (the embedded default's is cpu)
    cfg["devices"] = {**cfg["devices"], "gpu_a": {"accelerator": "cuda"}, "gpu_b": {"accelerator": "cuda"}}
    o = cfg["optimus"]
    o.update(archs=["resnet8", "resnet20"], devices=["gpu_a", "gpu_b"], seeds=[0, 1], n_train=128)
    o["train"].update(epochs=1, batch_size=16)
    o["train"]["schedule"] = {"name": "constant"}
    write_config(work / "gpus.yaml", cfg)
    runs = [f"results/optimus/runs/{arch}-{device}-s{seed}/provenance.json"
            for arch in o["archs"] for device in o["devices"] for seed in o["seeds"]]
    env = {**os.environ, "DLPERF_GPU_IDS": "0,1,2,3", "DLPERF_CUDA_AS_CPU": "1"}
    rc, text = snakemake("--cores", "4", "--resources", "gpu=4", "--configfile", "gpus.yaml", "--", *runs, cwd=work,
                         env=env, timeout=1200)
    assert rc == 0, text[-4000:]
    held = {run.split("/")[3]: json.loads((work / run).read_text())["gpu_id"] for run in runs}
    assert set(held.values()) <= {"0", "1", "2", "3"}
    # Each job holds its GPU from its claim to its exit, which the lock ledger records (Snakemake's own start and
    # finish stamps bracket a job's start-up and output checks too, so they are wider than the holding)
    windows = ledger_windows(work / ".snakemake" / "gpu-locks")
    assert len(windows) == len(runs) + len(o["devices"])   # the training runs and the two peaks
    concurrent = [(a, b) for a in windows for b in windows if a[2] < b[2] and a[3] < b[4] and b[3] < a[4]]
    assert concurrent, "no two jobs held GPUs at once: the test shows nothing"
    shared = [(a, b) for a, b in concurrent if a[1] == b[1]]
    assert not shared, shared
    (log,) = (work / ".snakemake" / "log").glob("*.snakemake.log")
    training = [iv for iv in job_intervals(log) if iv.rule == "optimus_train"]
    assert len(training) == len(runs)
