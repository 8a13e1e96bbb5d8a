"""An ImageNet weights file, verified by the download rule, checked to fit its backbone (rule:
transfer_fetch_weights)."""
from dlperf.atomic import atomic_copy
from dlperf.transfer.backbone import backbone_from_file
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    entry = snakemake.params.backbone
    backbone_from_file(entry, snakemake.input.download, num_classes=2)   # raises naming the keys that do not fit
    atomic_copy(snakemake.input.download, snakemake.output.weights)
    print(f"{snakemake.input.download}: loads strictly into {entry['arch']}")
