"""AP per Open Images class on the test split before and after fine-tuning (rule: ssd_eval_openimages;
rule ssd_openimages_ap_figure draws it).

"Before" is the fine-tune's starting point (initial.pt: the VOC body with freshly initialised heads); the VOC
heads themselves cannot name the new classes."""
from dlperf.data.openimages import OpenImagesDataset
from dlperf.data.voc import read_label_file
from dlperf.detection.evaluate import evaluate_dataset, load_ssd
from dlperf.detection.study import comparison_frame, write_ap_csv
from dlperf.provenance import Provenance
from dlperf.train.engine import select_device
from dlperf.workflow import limit_threads, script_logging

with script_logging(snakemake.log[0]):
    p = snakemake.params
    limit_threads(snakemake.threads)
    device = select_device(p.accelerator)
    e = p.eval
    labels = read_label_file(snakemake.input.labels)
    test = OpenImagesDataset(snakemake.input.data, "test", labels[1:])
    prov = Provenance({"ssd": {"model": p.model, "eval": p.eval}}, device=str(device),
                      study="ssd", before="initial.pt: VOC body, heads re-initialised, untrained (epoch 0)",
                      after="checkpoint.pt: after fine-tuning")
    frames = {}
    for stage, checkpoint, output in (("before", snakemake.input.initial, snakemake.output.before),
                                      ("after", snakemake.input.checkpoint, snakemake.output.after)):
        model = load_ssd(checkpoint, labels, **p.model)
        result = evaluate_dataset(model, test, labels, device, batch_size=e["batch_size"],
                                  use_2007_metric=e["use_2007_metric"], iou_threshold=e["iou_threshold"],
                                  prob_threshold=e["prob_threshold"], nms_iou=e["nms_iou"],
                                  candidate_size=e["candidate_size"])
        frames[stage] = write_ap_csv(result, output)
    comparison = comparison_frame(frames["before"], frames["after"])
    prov.write(snakemake.output.provenance, test_images=len(test), missing_images=test.missing_images,
               dropped_boxes=test.dropped_boxes, **{f"map_{k}": float(f.ap.iloc[-1]) for k, f in frames.items()})
    print(comparison.to_string(index=False))
