"""resources/data/voc2007: synthetic VOC scenes, or the VOC2007 trainval and test tars unpacked (rule: ssd_voc_data)."""
from dlperf.detection.datasets import prepare_voc
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    archives = snakemake.input.get("archives", [])
    print(prepare_voc(snakemake.output[0], snakemake.params.cfg, archives))
