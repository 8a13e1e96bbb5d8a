"""The claims ledger: config/claims.yaml validates, its code-only claims pass on the workflow's own counts at every
scale, data-dependent ones are not comparable below full scale, and every check can fail."""
from __future__ import annotations

import math
import subprocess

import pandas as pd
import pytest
import yaml
from conftest import ROOT, copy_run, load_config, snakemake

from dlperf.flops.census import PUBLISHED, census
from dlperf.flops.study import model_layers
from dlperf.flops.summary import peak_time
from dlperf.report.claims import (FAIL, NOT_COMPARABLE, PASS, check_claims, claim_files, load_ledger,
                                  regenerate, scorecard_values, settings_read)

LEDGER, SCHEMA = ROOT / "config/claims.yaml", ROOT / "config/claims.schema.yaml"
# The claims the FLOPs study's counts regenerate, at every scale; every other claim needs real data or the published
# recipe (or, for the trained VGG's parameters, the coursework's 32 filters), which the embedded default lacks.
COUNTED = {c["id"] for c in load_ledger(LEDGER, SCHEMA, {}) if c["result"]["file"].startswith("results/flops/")}
# The phenomena each study shows at the embedded scale as at the full one (issue 21's floors).
PHENOMENA = {c["id"] for c in load_ledger(LEDGER, SCHEMA, {}) if "embedded" in c["comparable_when"].get("scale", [])}


def ledger(config):
    return load_ledger(LEDGER, SCHEMA, config)


@pytest.fixture(scope="module")
def counted():
    """The FLOPs study's summary and PALEO table at 224 px and the census: what the code-only claims read."""
    summary = pd.DataFrame([model_layers(m, 224, 2)[1] for m in ("vgg16", "vgg19", "googlenet", "resnet50")])
    peaks = load_config()["flops"]["peak_model"]
    return {"results/flops/summary.csv": summary,
            "results/flops/peak_time.csv": peak_time(summary, peaks["peaks_tflops"], peaks["models"]),
            "results/flops/census.csv": census(list(PUBLISHED), 2)}


def claim(**overrides):
    """One claim as the ledger holds it after validation (defaults filled in)."""
    base = {"id": "x", "claim": "x", "source": "s", "protocol": "p", "published": 10.0, "unit": "u",
            "check": "within", "tolerance": {"absolute": 0.5}, "comparable_when": {},
            "result": {"file": "results/flops/t.csv", "row": {}, "column": "v", "reduce": "one", "factor": 1}}
    for key, value in overrides.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and key == "result" else value
    return base


def status(c, value, settings=None):
    frame = pd.DataFrame({"v": [value]})
    return check_claims([c], settings or {}, ["flops"], {"results/flops/t.csv": frame}).iloc[0]


def cell(**fields):
    """A baseline cell as the ledger holds it after validation (its file the result's, defaults filled in)."""
    return {"file": "results/flops/t.csv", "row": {}, "reduce": "one", "factor": 1, **fields}


def checked(c, frames, settings=None):
    return check_claims([c], settings or {}, ["flops"], frames).iloc[0]


@pytest.mark.parametrize("name", ["config.yaml", "full.yaml"])
def test_the_ledger_validates_against_each_config(name):
    claims = ledger(load_config(name))
    assert len({c["id"] for c in claims}) == len(claims) >= 15
    assert all(c["check"] in ("within", "at_least", "at_most") for c in claims)


def test_code_only_claims_pass_and_data_dependent_ones_are_not_comparable_in_the_embedded_default(counted):
    config = load_config()
    claims = [c for c in ledger(config) if c["id"] in COUNTED]
    table = check_claims(claims, settings_read(claims, config), ["flops"], counted).set_index("id")
    assert (table.status == PASS).all(), table[table.status != PASS][["published", "regenerated", "note"]]
    assert table.loc["coursework_vgg38_bn_params", "regenerated"] == 338500
    assert table.loc["vgg16_conv_share", "regenerated"] == pytest.approx(99.20, abs=0.005)
    data = [c for c in ledger(config) if c["id"] not in COUNTED]
    rows = check_claims(data, settings_read(data, config), [], {})
    assert (rows.status == NOT_COMPARABLE).all()
    assert rows.note.str.contains("study is not in this config").all()


def test_a_claim_whose_protocol_the_config_does_not_follow_is_not_comparable(counted):
    config = load_config()
    config["flops"]["image_size"] = 112
    claims = [c for c in ledger(config) if c["id"] == "vgg16_gmacs"]
    row = check_claims(claims, settings_read(claims, config), ["flops"], counted).iloc[0]
    assert row.status == NOT_COMPARABLE
    assert row.note == "flops.image_size is 112, the protocol needs 224"
    assert row.regenerated == pytest.approx(15.47, abs=0.005)  # still shown: the summary was at 224 in this frame


def test_within_at_least_and_at_most_each_fail_outside_their_tolerance():
    assert status(claim(), 10.5).status == PASS
    assert status(claim(), 10.51).status == FAIL
    assert status(claim(), 9.49).status == FAIL
    at_least = claim(check="at_least", tolerance={"absolute": 0})
    assert status(at_least, 1e9).status == PASS
    assert status(at_least, 9.99).status == FAIL
    at_most = claim(check="at_most", tolerance={"relative": 0.1})
    assert status(at_most, 0).status == PASS
    assert status(at_most, 11.01).status == FAIL
    assert status(at_most, 11.0).tolerance == "≤ +10%"


def test_a_setting_that_differs_from_the_protocol_is_named():
    row = status(claim(comparable_when={"scale": "full"}), 10.0, {"scale": "embedded"})
    assert (row.status, row.note) == (NOT_COMPARABLE, "scale is 'embedded', the protocol needs 'full'")


def test_a_claim_whose_protocol_does_not_hold_may_name_a_row_this_config_does_not_make():
    pruning = pd.DataFrame({"sparsity": [0.0, 0.9], "v": [0.9, 0.6]})   # the rehearsal prunes to 0.9 only
    half = claim(comparable_when={"scale": ["embedded", "full"]}, result={"row": {"sparsity": 0.5}})
    row = check_claims([half], {"scale": "rehearsal"}, ["flops"], {"results/flops/t.csv": pruning}).iloc[0]
    assert row.status == NOT_COMPARABLE and math.isnan(row.regenerated)
    assert row.note == "scale is 'rehearsal', the protocol needs 'embedded' or 'full'"
    with pytest.raises(ValueError, match="0 cells match"):   # where the protocol holds, the cell must exist
        check_claims([half], {"scale": "full"}, ["flops"], {"results/flops/t.csv": pruning})


def test_seconds_to_is_the_first_time_any_run_reaches_the_threshold_and_never_reached_is_not_comparable():
    result = {"file": "f", "column": "test_acc", "reduce": "seconds_to", "threshold": 0.94, "factor": 1, "row": {}}
    slow = pd.DataFrame({"test_acc": [0.5, 0.95, 0.96], "wall_seconds": [10.0, 20.0, 30.0]})
    fast = pd.DataFrame({"test_acc": [0.94, 0.2], "wall_seconds": [15.0, 25.0]})
    never = pd.DataFrame({"test_acc": [0.9], "wall_seconds": [5.0]})
    assert regenerate(result, [slow, fast, never]) == 15.0
    assert math.isnan(regenerate(result, [never]))
    c = claim(check="at_least", tolerance={"relative": 0}, published=3.83,
              result={**result, "file": "results/flops/t.csv"})
    row = check_claims([c], {}, ["flops"], {"results/flops/t.csv": never}).iloc[0]
    assert (row.status, row.note) == (NOT_COMPARABLE, "test_acc never reached 0.94")


def test_one_cell_means_exactly_one_matching_row_and_numbers_match_by_value():
    frame = pd.DataFrame({"model": ["a", "a"], "lr": [0.001, 0.01], "v": [1.0, 2.0]})
    result = {"file": "f", "row": {"model": "a"}, "column": "v", "reduce": "one", "factor": 1}
    with pytest.raises(ValueError, match="2 cells match"):
        regenerate(result, [frame])
    assert regenerate({**result, "row": {"model": "a", "lr": 1.0e-3}}, [frame]) == 1.0
    with pytest.raises(ValueError, match="0 cells match"):
        regenerate({**result, "row": {"model": "b"}}, [frame])


def test_a_ratio_is_the_result_cell_over_its_baseline():
    epochs = pd.DataFrame({"method": ["cached", "finetune"], "epoch_seconds": [2.0, 13.0]})
    faster = claim(published=5.0, check="at_least", tolerance={"absolute": 0},
                   result={"row": {"method": "finetune"}, "column": "epoch_seconds", "combine": "ratio",
                           "baseline": cell(row={"method": "cached"}, column="epoch_seconds")})
    row = checked(faster, {"results/flops/t.csv": epochs})
    assert (row.regenerated, row.status) == (6.5, PASS)
    assert checked({**faster, "published": 7.0}, {"results/flops/t.csv": epochs}).status == FAIL


def test_a_difference_is_the_result_cell_minus_its_baseline_each_in_the_unit_by_its_own_factor():
    students = pd.DataFrame({"targets": ["soft", "labels"], "val_acc": [0.70, 0.7175]})
    close = claim(published=0.0, unit="pp", check="at_least", tolerance={"absolute": 1.0},
                  result={"row": {"targets": "soft"}, "column": "val_acc", "factor": 100, "combine": "difference",
                          "baseline": cell(row={"targets": "labels"}, column="val_acc", factor=100)})
    row = checked(close, {"results/flops/t.csv": students})
    assert row.regenerated == pytest.approx(-1.75, abs=1e-12)
    assert row.status == FAIL
    assert checked({**close, "tolerance": {"absolute": 2.0}}, {"results/flops/t.csv": students}).status == PASS


def test_a_cell_with_no_value_is_not_comparable():
    row = status(claim(), math.nan)
    assert (row.status, row.note) == (NOT_COMPARABLE, "v has no value")


def test_a_ratio_over_a_zero_or_unreached_baseline_is_not_comparable_naming_the_baseline():
    runs = pd.DataFrame({"model": ["student", "teacher"], "test_acc": [0.5, 0.0], "wall_seconds": [4.0, 8.0]})
    ratio = claim(result={"row": {"model": "student"}, "column": "test_acc", "combine": "ratio",
                          "baseline": cell(row={"model": "teacher"}, column="test_acc")})
    row = checked(ratio, {"results/flops/t.csv": runs})
    assert (row.status, row.note) == (NOT_COMPARABLE, "the baseline's test_acc is 0, so there is no ratio")
    sooner = claim(result={"column": "test_acc", "reduce": "seconds_to", "threshold": 0.5, "combine": "ratio",
                           "baseline": cell(column="test_acc", reduce="seconds_to", threshold=0.9)})
    row = checked(sooner, {"results/flops/t.csv": runs})
    assert (row.status, row.note) == (NOT_COMPARABLE, "the baseline's test_acc never reached 0.9")


def test_a_baseline_in_another_file_is_among_the_claims_files_with_its_file_fields_from_the_config():
    config = load_config()
    c = claim(published=0.9, tolerance={"relative": 0.1},
              result={"file": "results/flops/pruned.csv", "column": "ms", "combine": "ratio",
                      "baseline": cell(file="results/flops/dense-{flops.image_size}.csv", column="ms")})
    settings = settings_read([c], config)
    assert settings == {"flops.image_size": 224}
    assert claim_files(c, settings) == ["results/flops/pruned.csv", "results/flops/dense-224.csv"]
    frames = {"results/flops/pruned.csv": pd.DataFrame({"ms": [9.0]}),
              "results/flops/dense-224.csv": pd.DataFrame({"ms": [10.0]})}
    assert (checked(c, frames, settings).regenerated, checked(c, frames, settings).status) == (0.9, PASS)


def test_a_baseline_without_a_file_reads_the_results_file(tmp_path):
    data = yaml.safe_load(LEDGER.read_text())
    (first,) = [c for c in data["claims"] if c["id"] == "vgg16_gmacs"]
    first["result"].update(baseline={"row": {"model": "vgg19"}, "column": "gmacs"}, combine="ratio")
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(data))
    (c,) = [c for c in load_ledger(path, SCHEMA, load_config()) if c["id"] == "vgg16_gmacs"]
    assert c["result"]["baseline"] == {"file": "results/flops/summary.csv", "row": {"model": "vgg19"},
                                       "column": "gmacs", "reduce": "one", "factor": 1}
    assert claim_files(c, {}) == ["results/flops/summary.csv"]


@pytest.mark.parametrize("name, comparable", [("config.yaml", True), ("full.yaml", True), ("rehearsal.yaml", False)])
def test_a_list_in_comparable_when_is_any_of_its_values_and_the_note_names_them_all(name, comparable):
    c = claim(comparable_when={"scale": ["embedded", "full"]})
    row = status(c, 10.0, settings_read([c], load_config(name)))
    if comparable:
        assert (row.status, row.note) == (PASS, "")
    else:
        assert (row.status, row.note) == (NOT_COMPARABLE,
                                          "scale is 'rehearsal', the protocol needs 'embedded' or 'full'")


def test_a_list_of_row_values_matches_any_of_them_and_numbers_match_by_value():
    frame = pd.DataFrame({"method": ["share", "none", "fuse"], "lr": [0.001, 0.01, 0.1], "v": [1.0, 2.0, 3.0]})
    result = {"file": "f", "row": {"method": ["share", "none"]}, "column": "v", "reduce": "max", "factor": 1}
    assert regenerate(result, [frame]) == 2.0
    assert regenerate({**result, "row": {"method": ["share"]}, "reduce": "one"}, [frame]) == 1.0
    assert regenerate({**result, "row": {"lr": [1.0e-3, 1.0e-1]}}, [frame]) == 3.0
    with pytest.raises(ValueError, match="2 cells match"):
        regenerate({**result, "reduce": "one"}, [frame])


def test_mean_is_over_every_matching_cell_of_every_file():
    seed0 = pd.DataFrame({"model": ["a", "b"], "v": [1.0, 9.0]})
    seed1 = pd.DataFrame({"model": ["a", "a"], "v": [2.0, 6.0]})
    result = {"file": "f", "row": {"model": "a"}, "column": "v", "reduce": "mean", "factor": 10}
    assert regenerate(result, [seed0, seed1]) == 30.0


def test_file_fields_come_from_the_config_and_a_star_gives_one_file_per_element():
    config = load_config("full.yaml")
    (c,) = [c for c in ledger(config) if c["id"] == "optimus_resnet50_target"]
    assert claim_files(c, settings_read([c], config)) == [
        f"results/optimus/runs/resnet50-{d}-s0/epochs.csv" for d in ("k80", "p100", "v100")]


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["claims"][0].update(colour="red"), "Additional properties are not allowed"),
    (lambda d: d["claims"][1].update(id=d["claims"][0]["id"]), "appears twice"),
    (lambda d: d["claims"][0].update(comparable_when={"flops.imagesize": 224}), "config key 'flops.imagesize'"),
    (lambda d: d["claims"][0]["tolerance"].update(relative=0.1), "claims/0/tolerance"),
    (lambda d: d["claims"][0]["result"].update(reduce="seconds_to"), "'threshold' is a required property"),
    (lambda d: d["claims"][0]["result"].update(combine="ratio"),
     "claim {first}: claims/0/result: 'baseline' is a dependency of 'combine'"),
    (lambda d: d["claims"][0]["result"].update(baseline={"column": "gmacs"}),
     "claim {first}: claims/0/result: 'combine' is a dependency of 'baseline'"),
    (lambda d: d["claims"][0]["result"].update(baseline={"column": "gmacs"}, combine="quotient"),
     "claims/0/result/combine: 'quotient' is not one of"),
    (lambda d: d["claims"][0]["result"].update(baseline={"column": "gmacs", "colour": "red"}, combine="ratio"),
     "claims/0/result/baseline: Unevaluated properties are not allowed"),
    (lambda d: d["claims"][0]["result"].update(colour="red"), "claims/0/result: Unevaluated properties are not"),
    (lambda d: d["claims"][0]["result"].update(baseline={"file": "results/flops/{flops.imagesize}.csv",
                                                         "column": "gmacs"}, combine="ratio"),
     "claim {first}: config key 'flops.imagesize'"),
    (lambda d: d["claims"][0]["result"].update(baseline={"file": "results/depth/summary.csv", "column": "gmacs"},
                                               combine="ratio"),
     "claim {first}: the baseline's file results/depth/summary.csv is not of the flops study"),
    (lambda d: d["claims"][0].update(comparable_when={"flops.imagesize": [112, 224]}), "config key 'flops.imagesize'"),
    (lambda d: d["claims"][0].update(comparable_when={"scale": []}), "claims/0/comparable_when/scale"),
    (lambda d: d["claims"][0]["result"].update(reduce="median"), "'median' is not one of"),
])
def test_a_malformed_ledger_is_rejected_naming_the_claim(tmp_path, edit, message):
    data = yaml.safe_load(LEDGER.read_text())
    edit(data)
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=message.format(first=data["claims"][0]["id"])):
        load_ledger(path, SCHEMA, load_config())


def test_scorecard_values_count_each_status():
    table = pd.DataFrame({"status": [PASS, PASS, FAIL, NOT_COMPARABLE]})
    assert scorecard_values(table) == {"ClaimsTotal": "4", "ClaimsPassed": "2", "ClaimsFailed": "1",
                                       "ClaimsNotComparable": "1"}



# ---- through the workflow, on a finished embedded run ----------------------------------------------------------
def test_strict_claims_fail_the_build_naming_the_claim_and_the_report_opens_with_the_scorecard(embedded_run,
                                                                                             tmp_path):
    report = embedded_run / "results/report"
    scorecard = pd.read_csv(report / "claims.csv").set_index("id")
    assert len(PHENOMENA) >= 17
    passed = COUNTED | PHENOMENA   # not the trained VGG_38 BN's count: the default trains 16 filters, not 32
    assert scorecard.status[list(passed)].to_dict() == dict.fromkeys(passed, PASS), scorecard.loc[list(passed)]
    assert set(scorecard.drop(index=list(passed)).status) == {NOT_COMPARABLE}
    text = subprocess.run(["pdftotext", "-layout", report / "report.pdf", "-"], capture_output=True, text=True,
                          check=True).stdout
    assert text.index("Reproduction scorecard") < text.index("About this report")
    assert "scale embedded; " in text  # the fidelity line under a figure's caption

    run = copy_run(embedded_run, tmp_path / "run")
    ledger_text = (run / "config/claims.yaml").read_text().replace("published: 15.47", "published: 15.0")
    (run / "config/claims.yaml").write_text(ledger_text)
    rc, out = snakemake("--cores", "1", "--config", "claims_strict=true", "--", "results/report/claims.csv",
                        cwd=run)
    assert rc != 0
    assert "vgg16_gmacs: published 15 GMACs, regenerated 15.4703" in (run / "logs/report/claims.log").read_text()
    rc, out = snakemake("--cores", "1", "--config", "claims_strict=false", "--", "results/report/claims.csv",
                        cwd=run)
    assert rc == 0, out[-3000:]
    assert pd.read_csv(run / "results/report/claims.csv").set_index("id").status["vgg16_gmacs"] == FAIL
