"""AP per VOC class of the VOC detector on VOC2007 test, as pytorch-ssd's eval_ssd.py (rule: ssd_eval_voc;
rule ssd_voc_ap_figure draws it)."""
from pathlib import Path

from dlperf.data.download import file_checksum
from dlperf.data.voc import VOC_DIR, VOCDataset
from dlperf.detection.evaluate import evaluate_dataset, load_ssd
from dlperf.detection.study import write_ap_csv
from dlperf.provenance import Provenance
from dlperf.train.engine import select_device
from dlperf.workflow import limit_threads, script_logging

with script_logging(snakemake.log[0]):
    p = snakemake.params
    limit_threads(snakemake.threads)
    device = select_device(p.accelerator)
    e = p.eval
    prov = Provenance({"ssd": {"model": p.model, "eval": p.eval}}, device=str(device),
                      study="ssd", checkpoint=snakemake.input.checkpoint,
                      checkpoint_sha256=file_checksum(snakemake.input.checkpoint, "sha256"))
    model = load_ssd(snakemake.input.checkpoint, VOCDataset.class_names, **p.model)
    test = VOCDataset(Path(snakemake.input.data) / VOC_DIR, "test", keep_difficult=True)
    result = evaluate_dataset(model, test, VOCDataset.class_names, device, batch_size=e["batch_size"],
                              use_2007_metric=e["use_2007_metric"], iou_threshold=e["iou_threshold"],
                              prob_threshold=e["prob_threshold"], nms_iou=e["nms_iou"],
                              candidate_size=e["candidate_size"])
    frame = write_ap_csv(result, snakemake.output.ap)
    prov.write(snakemake.output.provenance, mean_ap=result.mean_ap, test_images=len(test),
               num_priors=int(model.priors.shape[0]),
               dropped_boxes=test.dropped_boxes)
    print(frame.to_string(index=False))
