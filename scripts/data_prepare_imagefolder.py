"""An ImageFolder dataset (train/val/test): synthesized, or converted from its downloaded originals
(rule: data_prepare_imagefolder). Its provenance.json counts the images of every class and split."""
import tempfile
from pathlib import Path

from dlperf.data.download import extract
from dlperf.data.errors import DatasetFormatError
from dlperf.data.flowers import flowers102_to_imagefolder
from dlperf.data.imagefolder import class_counts, scan_imagefolder
from dlperf.data.synthetic import synthesize_imagefolder
from dlperf.provenance import Provenance
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    out = Path(snakemake.output[0])
    entry = snakemake.params.entry
    prov = Provenance({"data": {snakemake.wildcards.dataset: entry}})
    if entry["source"] == "synthetic":
        synthesize_imagefolder(out, **entry["synthetic"])
    else:
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            extracted = extract(snakemake.input.images, Path(tmp) / "images")
            first = next(extracted.rglob("image_00001.jpg"), None)
            if first is None:
                raise DatasetFormatError(f"{snakemake.input.images}: no jpg/image_00001.jpg in the archive")
            flowers102_to_imagefolder(first.parent, snakemake.input.labels, snakemake.input.splits, out)
    counts = class_counts(scan_imagefolder(out))
    prov.write(out / "provenance.json", classes=len(counts), n_train=sum(c["n_train"] for c in counts),
               n_val=sum(c["n_val"] for c in counts), n_test=sum(c["n_test"] for c in counts))
    print(f"{out}: {len(counts)} classes")
