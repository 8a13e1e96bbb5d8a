"""The workflow's architecture as contracts: a rule's params are exactly the config keys it reads, a study switches
off by leaving its section out, each study writes results/<study>/values.json, names agree from result path to rule
file to script, and the rule files are formatted, linted and small."""
import copy
import json
import re
import subprocess
import sys
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from snakemake.iocontainers import Namedlist

from conftest import ROOT, copy_run, job_counts, load_config, snakemake, write_config

TRAINING_RULES = {"optimus_train", "depth_train", "transfer_pretrain", "transfer_finetune", "transfer_head",
                  "ssd_pretrain_voc", "ssd_finetune", "compress_prune", "compress_distill", "compress_qat_train",
                  "compress_deep_shared"}
STUDIES = ["flops", "optimus", "depth", "transfer", "ssd", "serve", "compress"]


def without(study: str) -> dict:
    """The embedded default with ``study`` off, and what cannot run without it: the compress study reuses the
    Optimus runs, the serving study the SSD detector, and the compress study quantizes the served SSD."""
    cfg = copy.deepcopy(load_config())
    gone = {study} | ({"compress"} if study == "optimus" else set()) | ({"serve"} if study == "ssd" else set())
    for name in gone:
        del cfg[name]
    if "serve" in gone and "compress" in cfg:
        cfg["compress"]["quantize"]["ssd"] = False
    return cfg


def planned(cfg: dict, tmp_path: Path, cwd: Path = ROOT, name: str = "config.yaml") -> dict[str, int]:
    rc, text = snakemake("-n", "--configfile", str(write_config(tmp_path / name, cfg, sort_keys=False)), cwd=cwd)
    assert rc == 0, text[-3000:]
    return job_counts(text) if "Job stats:" in text else {}


@pytest.mark.parametrize("study", STUDIES)
def test_a_study_left_out_of_the_config_is_off_and_the_rest_still_reaches_the_report(study, tmp_path):
    counts = planned(without(study), tmp_path)
    assert not [rule for rule in counts if rule.startswith(f"{study}_")], counts
    assert counts["report_pdf"] == 1
    kept = [s for s in STUDIES if s in without(study)]
    assert {f"{s}_values" for s in kept} <= set(counts), counts


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.pop("optimus"), "the compress study needs the optimus study (config section `optimus`)"),
    (lambda c: c.pop("ssd"), "the serve study needs the ssd study (config section `ssd`)"),
    (lambda c: c.pop("serve"), "compress.quantize.ssd: quantizing the SSD needs the serve study's ONNX export"),
])
def test_a_study_whose_dependency_is_off_is_rejected_before_any_job_naming_both(edit, message, tmp_path):
    cfg = copy.deepcopy(load_config())
    edit(cfg)
    rc, text = snakemake("-n", "--configfile", str(write_config(tmp_path / "c.yaml", cfg)))
    assert rc != 0 and message in text, text[-2000:]


# Keys that only plotting, evaluation or timing read: editing one must not retrain anything. The last case edits a
# key a training job reads, so the check can fail.
EDITS = {
    "depth.grad_flow.epochs": (lambda c: c["depth"]["grad_flow"].update(epochs=[1, 2]), "depth_grad_flow", set()),
    "ssd.eval.prob_threshold": (lambda c: c["ssd"]["eval"].update(prob_threshold=0.05), "ssd_eval_openimages",
                                set()),
    "transfer.timing.epochs": (lambda c: c["transfer"]["timing"].update(epochs=2), "transfer_timing", set()),
    "depth.train.epochs": (lambda c: c["depth"]["train"].update(epochs=c["depth"]["train"]["epochs"] + 1), "depth_summary",
                           {"depth_train"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(EDITS))
def test_editing_a_key_on_a_finished_run_replans_only_the_jobs_that_read_it(key, embedded_run, tmp_path):
    edit, reader, trained = EDITS[key]
    cfg = copy.deepcopy(load_config(root=embedded_run))
    edit(cfg)
    counts = planned(cfg, tmp_path, cwd=embedded_run)
    assert reader in counts, counts
    assert set(counts) & TRAINING_RULES == trained, counts


def switch_off(study: str, run: Path) -> None:
    """Run the workflow in ``run`` with ``study`` off: it trains nothing and the report leaves the study out."""
    cfg = without(study)
    path = write_config(run.parent / f"no-{study}.yaml", cfg, sort_keys=False)  # key order is in the params
    rc, text = snakemake("--cores", "1", "--configfile", str(path), cwd=run, timeout=900)
    assert rc == 0, (study, text[-3000:])
    ran = job_counts(text) if "Job stats:" in text else {}
    assert not set(ran) & TRAINING_RULES, (study, ran)
    sections = (run / "results/report/sections.tex").read_text()
    assert f"report/sections/{study}" not in sections
    assert all(f"report/sections/{s}" in sections for s in STUDIES if s in cfg)
    macros = (run / "results/report/values.tex").read_text()
    assert f"\\newcommand{{\\{study.capitalize()}" not in macros, study
    assert (run / "results/report/report.pdf").stat().st_size > 10_000


@pytest.mark.slow
def test_each_study_switched_off_on_a_finished_run_gives_a_report_without_it_and_trains_nothing(embedded_run,
                                                                                              tmp_path):
    # What reruns (the report's rules, the FLOPs study's training table) is a chain of one job at a time: two copies
    # of the run, each switching off every other study in turn, keep two cores busy.
    copies = [copy_run(embedded_run, tmp_path / f"run{i}") for i in range(2)]

    def switch_off_in_turn(i: int) -> None:
        for study in STUDIES[i::len(copies)]:
            switch_off(study, copies[i])

    with ThreadPoolExecutor(len(copies)) as pool:
        list(pool.map(switch_off_in_turn, range(len(copies))))  # raises what a copy's check raised


@pytest.mark.slow
def test_each_study_writes_its_values_and_the_report_macros_are_their_union(embedded_run):
    macros = {}
    for study in STUDIES:
        record = json.loads((embedded_run / "results" / study / "values.json").read_text())
        assert record["study"] == study and record["macros"], study
        assert all(name.startswith(study.capitalize()) for name in record["macros"]), study
        assert record["provenance"] and all("packages" in r for r in record["provenance"])
        macros |= record["macros"]
    text = (embedded_run / "results/report/values.tex").read_text()
    for name, value in macros.items():
        assert f"\\newcommand{{\\{name}}}{{{value}}}" in text


def test_every_result_is_made_by_a_rule_of_its_study_from_a_script_of_its_study():
    """results/<study>/... <- rule <study>_* in rules/<study>.smk <- scripts/<study>_*.py, for every file of the full
    config's DAG (the summary lists each output with the rule that makes it)."""
    rc, text = snakemake("--detailed-summary", "--configfile", "config/full.yaml")
    assert rc == 0, text[-3000:]
    rows = [line.split("\t") for line in text.splitlines() if line.startswith(("results/", "resources/"))]
    assert len(rows) > 100
    for row in rows:
        path, rule = row[0], row[2]
        if path.startswith("results/"):
            assert rule.startswith(path.split("/")[1] + "_"), (path, rule)
    for smk in (ROOT / "rules").glob("*.smk"):
        text = smk.read_text()
        for rule in re.findall(r"^rule (\w+):", text, re.M):
            assert rule.startswith(f"{smk.stem}_"), (smk.name, rule)
        for script in re.findall(r'script:\n\s+"\.\./scripts/(\w+)\.py"', text):
            assert script.startswith(f"{smk.stem}_"), (smk.name, script)


def test_no_module_is_over_400_lines_and_no_rule_file_over_350():
    long = {str(p.relative_to(ROOT)): n for p in [*ROOT.glob("src/dlperf/**/*.py"), *ROOT.glob("scripts/*.py")]
            if (n := len(p.read_text().splitlines())) > 400}
    long |= {str(p.relative_to(ROOT)): n for p in ROOT.glob("rules/*.smk")
             if (n := len(p.read_text().splitlines())) > 350}
    assert not long, long


def test_the_snakefile_and_rule_files_are_formatted_by_snakefmt():
    snakefmt = str(Path(sys.executable).parent / "snakefmt")
    out = subprocess.run([snakefmt, "--check", "--diff", "Snakefile", "rules"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def fake_job(tmp_path: Path, data_text: str, state_dir: str = "state", peak: float = 1e12):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "provenance.json").write_text(data_text)
    (tmp_path / "peak.json").write_text(json.dumps({"peak_flops": peak}))
    return types.SimpleNamespace(
        threads=1, wildcards=Namedlist(fromdict={"arch": "resnet8", "seed": "0"}),
        params=Namedlist(fromdict={"train": {"epochs": 2}, "accelerator": "cpu",
                                   "state_dir": str(tmp_path / state_dir)}),
        input=Namedlist(fromdict={"data": str(data), "peak": str(tmp_path / "peak.json")}),
        output=Namedlist(fromdict={"epochs": str(tmp_path / "run" / "epochs.csv")}))


def test_a_training_fingerprint_follows_the_data_and_settings_but_not_where_state_lives_or_the_peak(tmp_path):
    from dlperf.train.job import TrainingJob

    def fp(**kw):
        return TrainingJob(fake_job(tmp_path, **kw), "optimus", "resnet8-cpu-s0").fingerprint

    base = fp(data_text='{"n_train": 500}')
    assert fp(data_text='{"n_train": 500}', state_dir="elsewhere", peak=2e12) == base
    assert fp(data_text='{"n_train": 501}') != base
    job = TrainingJob(fake_job(tmp_path, '{"n_train": 500}'), "optimus", "resnet8-cpu-s0")
    assert job.peak_flops == 1e12 and job.run_dir == tmp_path / "run"
