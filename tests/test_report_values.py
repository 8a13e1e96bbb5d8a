"""The report's macros: the shared formatting, a study's values.json (write_study_values) and their gathering into
values.tex (gather_values, rule report_values). The macros of a whole fixture results tree are checked in
test_report.py, through the rules."""
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from snakemake.iocontainers import Namedlist

from dlperf.report.latex import Latex, newcommand
from dlperf.report.values import (
    change,
    count,
    gather_values,
    merge,
    provenance_record,
    provenance_values,
    significant,
    write_study_values,
)


def provenance(config: dict, **extra) -> dict:
    """A provenance.json record as dlperf.provenance writes it."""
    return {"config": config, "git": {"commit": "0123456789abcdef0123", "dirty": False},
            "packages": {"python": "3.11.7", "dlperf": "0.1.0", "torch": "2.14.1", "torchvision": "0.29.1",
                         "snakemake": "9.27.1", "numpy": "2.1.0"},
            "device": "cpu", "cpu": "Fixture CPU", "cpu_count": 2, "host": "fixture", "peak_flops": 4.0e10,
            "start": "2026-01-02T10:00:00+00:00", "end": "2026-01-02T10:05:00+00:00", **extra}


def write_json(path: Path, record: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
    return path


# ---- formatting -----------------------------------------------------------------------------------------------
def test_numbers_are_positional_with_significant_digits_and_grouped_counts():
    assert [significant(x) for x in (0.043620598, 14.352949, 1919.69, 0)] == ["0.0436", "14.4", "1920", "0"]
    assert significant(math.inf) == r"$\infty$"
    assert count(1280) == "1280" and count(138357544) == r"138\,357\,544"


def test_a_macro_defined_twice_is_an_error():
    with pytest.raises(ValueError, match="OptimusRuns"):
        merge({"OptimusRuns": 4}, {"OptimusRuns": 5})


def test_a_change_is_worded_as_the_printed_values_read():
    assert change("0.008", "0.003", "rises", "falls", "stays") == "falls"
    assert change("16.0", "21.0", "rises", "falls", "stays") == "rises"
    assert change("0.413", "0.413", "rises", "falls", "stays") == "stays"


# ---- a study's values.json ------------------------------------------------------------------------------------
def fake_snakemake(tmp_path: Path, inputs: dict, params: dict) -> SimpleNamespace:
    """What a values rule's script sees as ``snakemake``: named inputs, params, output and log."""
    return SimpleNamespace(input=Namedlist(fromdict=inputs), params=Namedlist(fromdict=params),
                           output=Namedlist(fromdict={"values": str(tmp_path / "results/fake/values.json")}),
                           log=Namedlist(fromdict={"log": str(tmp_path / "logs/fake/values.log")}))


def test_a_study_writes_its_macros_as_tex_and_its_provenance_compact(tmp_path):
    """Named inputs loaded (a CSV, a JSON file, a dataset directory, a list of files), params passed, ``provenance``
    reduced and ``includes`` only depended on; plain values escaped, Latex values verbatim."""
    pd.DataFrame({"model": ["vgg16", "vgg19"], "gmacs": [15.5, 19.6]}).to_csv(tmp_path / "summary.csv", index=False)
    write_json(tmp_path / "peak.json", {"device_name": "Fixture_CPU"})
    dataset = write_json(tmp_path / "data/provenance.json", provenance({"data": {}}, classes=10)).parent
    runs = [write_json(tmp_path / f"runs/r{i}/provenance.json", provenance({"train": {}}, run=f"r{i}"))
            for i in range(2)]
    seen = {}

    def fake_values(*, summary, peak, dataset, runs, share, label):
        seen.update(summary=summary, runs=runs)
        return {"FakeModels": len(summary), "FakeDevice": peak["device_name"], "FakeClasses": dataset["classes"],
                "FakeRuns": len(runs), "FakeShare": f"{share}%", "FakeLabel": label, "FakeMath": Latex(r"$\infty$")}

    smk = fake_snakemake(tmp_path, {
        "summary": str(tmp_path / "summary.csv"), "peak": str(tmp_path / "peak.json"), "dataset": str(dataset),
        "runs": [str(r) for r in runs], "provenance": [str(runs[0]), str(dataset)],
        "includes": [str(tmp_path / "figures/never_made.pdf")]}, {"share": 99.2, "label": "a_b"})
    write_study_values(smk, "fake", fake_values)

    written = json.loads((tmp_path / "results/fake/values.json").read_text())
    assert isinstance(seen["summary"], pd.DataFrame) and list(seen["runs"]) == [str(r) for r in runs]
    assert written["study"] == "fake"
    assert written["macros"] == {"FakeModels": "2", "FakeDevice": r"Fixture\_CPU", "FakeClasses": "10",
                                 "FakeRuns": "2", "FakeShare": r"99.2\%", "FakeLabel": r"a\_b",
                                 "FakeMath": r"$\infty$"}
    full = [json.loads(runs[0].read_text()), json.loads((dataset / "provenance.json").read_text())]
    assert written["provenance"] == [provenance_record(r) for r in full]
    assert all(set(r) == {"git", "packages", "gpu", "cpu", "end"} for r in written["provenance"])
    assert set(written["provenance"][0]["packages"]) == {"python", "torch", "torchvision", "snakemake", "dlperf"}
    assert provenance_values(written["provenance"], "embedded") == provenance_values(full, "embedded")
    assert "7 macros" in (tmp_path / "logs/fake/values.log").read_text()


def test_a_macro_name_that_is_not_a_control_word_fails_the_study_not_the_report(tmp_path):
    with pytest.raises(ValueError, match="control word"):
        write_study_values(fake_snakemake(tmp_path, {}, {}), "fake", lambda: {"Fake2": "1"})
    assert not (tmp_path / "results/fake/values.json").exists()


# ---- the report's gathering -----------------------------------------------------------------------------------
def test_the_report_gathers_every_studys_macros_after_the_shared_ones():
    optimus = {"study": "optimus", "macros": {"OptimusRuns": "4", "OptimusMath": r"$\infty$"},
               "provenance": [provenance_record(provenance({}))]}
    flops = {"study": "flops", "macros": {"FlopsPeakSource": r"100\%"},
             "provenance": [provenance_record(provenance({}, gpu="Fixture_GPU", end="2026-02-03T00:00:00"))]}
    macros = gather_values([optimus, flops], "embedded")
    assert list(macros)[:2] == ["ReportScale", "GitCommit"] and list(macros)[-3:] == [
        "OptimusRuns", "OptimusMath", "FlopsPeakSource"]
    assert macros["GitCommit"] == "0123456789ab" and macros["ResultsDate"] == "2026-02-03"
    # every value is TeX already: a study's verbatim, a shared one escaped once
    assert newcommand("OptimusMath", macros["OptimusMath"]) == r"\newcommand{\OptimusMath}{$\infty$}"
    assert newcommand("FlopsPeakSource", macros["FlopsPeakSource"]) == r"\newcommand{\FlopsPeakSource}{100\%}"
    assert macros["ComputeDevices"] == r"Fixture CPU and Fixture\_GPU"


def test_the_report_rejects_a_macro_that_two_studies_define():
    optimus = {"study": "optimus", "macros": {"OptimusRuns": "4"}, "provenance": []}
    flops = {"study": "flops", "macros": {"OptimusRuns": "5"}, "provenance": []}
    with pytest.raises(ValueError, match="OptimusRuns by optimus and flops"):
        gather_values([optimus, flops], "embedded")
    with pytest.raises(ValueError, match="GitCommit by shared and flops"):
        gather_values([{"study": "flops", "macros": {"GitCommit": "x"}, "provenance": []}], "embedded")
