"""A Visual-Decathlon-like ImageFolder (train/val/test, 72 px), synthesized (rule: synthesize_decathlon)."""
from pathlib import Path

from dlperf.data.imagefolder import class_counts, scan_imagefolder
from dlperf.data.synthetic import synthesize_imagefolder
from dlperf.provenance import Provenance
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    out = Path(snakemake.output[0])
    prov = Provenance({"data": {"decathlon": {"source": "synthetic", "synthetic": snakemake.params.entry}}})
    synthesize_imagefolder(out, **snakemake.params.entry)
    counts = class_counts(scan_imagefolder(out))
    prov.write(out.parent / "decathlon.provenance.json", classes=counts)
