"""The schema rejects a bad config before any job runs, naming the offending key."""
import copy

import pytest
from snakemake.utils import validate

from conftest import ROOT, load_config, snakemake, write_config

SCHEMA = str(ROOT / "config" / "schema.yaml")


@pytest.mark.parametrize("name", ["config.yaml", "full.yaml"])
def test_shipped_configs_are_valid_and_get_schema_defaults(name):
    cfg = load_config(name)
    validate(cfg, SCHEMA)
    assert cfg["optimus"]["train"]["amp"] == "auto"            # a default injected by the schema
    assert cfg["optimus"]["train"]["schedule"]["step_per"] == "epoch"


def broken(edit):
    cfg = copy.deepcopy(load_config())
    edit(cfg)
    return cfg


BAD = {
    "wrong type": (lambda c: c["optimus"]["train"].update(epochs="ten"), "'ten' is not of type 'integer'"),
    "out of bounds": (lambda c: c["optimus"]["train"]["optimizer"].update(lr=-0.1), "lr"),
    "unknown key": (lambda c: c["optimus"]["train"].update(epochz=3), "epochz"),
    "missing section": (lambda c: c.pop("data"), "'data' is a required property"),
    "unknown optimizer": (lambda c: c["optimus"]["train"]["optimizer"].update(name="lamb"), "lamb"),
    "bad device label": (lambda c: c["devices"].update({"K80 GPU": {"accelerator": "cuda"}}), "K80 GPU"),
    "Deep Compression at sparsity 1": (lambda c: c["compress"]["deep"].update(sparsity=1.0), "1.0 is greater than or equal"),
    "a codebook of one centroid (k = 2^0)": (lambda c: c["compress"]["deep"]["bits"].update(conv=0), "0 is less than"),
    "an index wider than the format holds": (lambda c: c["compress"]["deep"]["bits"].update(linear=17),
                                             "17 is greater than the maximum of 16"),
    "a relative index of 0 bits": (lambda c: c["compress"]["deep"]["gap_bits"].update(conv=0), "0 is less than"),
    "weight-only QAT at 1 bit": (lambda c: c["compress"]["qat"].update(weight_only_bits=1), "1 is less than"),
    "download without checksum": (
        lambda c: c["data"].update(cifar10={"source": "download", "download": {"url": "https://example.org/a.tgz"}}),
        "cifar10"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_schema_rejects(case):
    edit, needle = BAD[case]
    with pytest.raises(Exception) as err:
        validate(broken(edit), SCHEMA)
    assert needle in str(err.value)


def test_snakemake_rejects_a_bad_config_before_building_the_dag(tmp_path):
    bad = write_config(tmp_path / "bad.yaml", broken(lambda c: c["optimus"]["train"].update(batch_size=0)))
    rc, text = snakemake("-n", "--configfile", str(bad), timeout=120)
    assert rc != 0
    assert "batch_size" in text and "0 is less than the minimum of 1" in text
    assert "Job stats" not in text                            # no DAG, no job
