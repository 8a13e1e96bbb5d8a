"""AP per Open Images class on the test split before and after fine-tuning (rule: ssd_eval_openimages).

"Before" is the fine-tune's starting point (initial.pt: the VOC body with freshly initialised heads); the VOC
heads themselves cannot name the new classes."""
from dlperf.data.openimages import OpenImagesDataset
from dlperf.data.voc import read_label_file
from dlperf.detection.evaluate import evaluate_dataset, load_ssd
from dlperf.detection.study import comparison_bars, comparison_frame, write_ap_csv
from dlperf.provenance import Provenance
from dlperf.report.fidelity import of_job
from dlperf.report.style import save_figure
from dlperf.report.tables import write_table
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
    write_table(comparison, snakemake.output.table, formats={c: ".4f" for c in ("ap_before", "ap_after", "change")},
                bold_rows={len(comparison) - 1})
    fidelity = of_job(snakemake, prov.record)
    save_figure(comparison_bars(comparison), snakemake.output.figure, fidelity)
    prov.write(snakemake.output.provenance, test_images=len(test), missing_images=test.missing_images,
               dropped_boxes=test.dropped_boxes, **{f"map_{k}": float(f.ap.iloc[-1]) for k, f in frames.items()})
    print(comparison.to_string(index=False))
