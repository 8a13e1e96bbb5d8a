"""CIFAR-10/100 in the real pickle layout: synthesized, or extracted from the verified archive (rule: data_prepare_cifar)."""
from pathlib import Path

from dlperf.atomic import atomic_dir
from dlperf.data import cifar, synthetic
from dlperf.data.download import extract
from dlperf.provenance import Provenance
from dlperf.workflow import script_logging

SYNTHESIZE = {"cifar10": synthetic.synthesize_cifar10, "cifar100": synthetic.synthesize_cifar100}
READ = {"cifar10": cifar.read_cifar10, "cifar100": cifar.read_cifar100}
DIRS = {"cifar10": cifar.CIFAR10_DIR, "cifar100": cifar.CIFAR100_DIR}

with script_logging(snakemake.log[0]):
    name, entry = snakemake.wildcards.dataset, snakemake.params.entry
    out = Path(snakemake.output[0])
    prov = Provenance({"data": {name: entry}})
    with atomic_dir(out) as tmp:
        if entry["source"] == "synthetic":
            SYNTHESIZE[name](tmp, **entry["synthetic"])
        else:
            extract(Path(snakemake.input.archive), tmp / "extracted")
            (tmp / "extracted" / DIRS[name]).rename(tmp / DIRS[name])
            (tmp / "extracted").rmdir()
        data = READ[name](tmp)  # the format check: the same reader serves real and synthetic files
        prov.write(tmp / "provenance.json", n_train=len(data.train_y), n_test=len(data.test_y),
                   classes=len(data.classes))
    print(f"{name}: {len(data.train_y)} train / {len(data.test_y)} test images, {len(data.classes)} classes")
