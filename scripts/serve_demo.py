"""The served detector seen from a client: python -m dlperf.serve on the model repository, one test image of each
class sent as an ORT-server request, the response parsed, thresholded and NMS-ed per class, and the boxes drawn
(rule: serve_demo). The server is always stopped, also when a request fails."""
from pathlib import Path

from dlperf.atomic import atomic_dir, atomic_write, write_json
from dlperf.data.openimages import OpenImagesDataset
from dlperf.data.voc import read_label_file
from dlperf.provenance import Provenance
from dlperf.report.fidelity import of_job
from dlperf.serve import OrtServerClient
from dlperf.serve.demo import detections_record, draw_detections, first_image_of_each_class, request_detections
from dlperf.serve.process import server_process
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]), open(snakemake.log[0], "a", buffering=1) as server_log:
    p, out = snakemake.params, snakemake.output
    repository = Path(snakemake.input.model_files[0]).parents[2]  # <root>/<name>/1/model.onnx
    demo = p.demo
    provenance = Provenance({"serve": {"demo": demo}, "ssd": {"model": {"image_size": p.image_size}}})
    class_names = read_label_file(snakemake.input.labels)
    unknown = [name for name in demo["classes"] if name not in class_names[1:]]
    if unknown:
        raise ValueError(f"config serve.demo.classes {unknown} are not classes of {snakemake.input.labels}: "
                         f"{class_names[1:]}")
    dataset = OpenImagesDataset(snakemake.input.data, "test", class_names[1:])
    labels = [dataset.get_annotation(i)[1][1] for i in range(len(dataset))]  # reads image headers only
    chosen = first_image_of_each_class(labels, class_names, demo["classes"])
    fmt, extension = demo["format"], {"protobuf": "pb", "json": "json"}[demo["format"]]
    records, fidelity = {}, of_job(snakemake, provenance.record)
    with server_process(repository, "--intra-op-threads", str(snakemake.threads), log=server_log) as server, \
            atomic_dir(out.responses) as responses:
        client = OrtServerClient(server.url)
        for name, image_path in zip(demo["classes"], out.images):
            image, boxes, _ = dataset[chosen[name]]
            prediction, raw = request_detections(client, p.name, image, p.image_size,
                                                 prob_threshold=demo["prob_threshold"], nms_iou=demo["nms_iou"],
                                                 top_k=demo["top_k"], fmt=fmt)
            (responses / f"response_{name}.{extension}").write_bytes(raw)
            with atomic_write(image_path, "wb") as handle:
                draw_detections(image, prediction, class_names, ground_truth=boxes).save(
                    handle, format="png", pnginfo=fidelity.png_info(Path(image_path).stem))
            records[name] = {"image_id": dataset.ids[chosen[name]], "url": f"{server.url}/v1/models/{p.name}:predict",
                             "format": fmt, "response": f"responses/response_{name}.{extension}",
                             "response_bytes": len(raw), "ground_truth": len(boxes),
                             "detections": detections_record(prediction, class_names)}
            print(f"{name}: image {records[name]['image_id']}, {len(prediction.labels)} detections, "
                  f"{len(raw)} response bytes")
    write_json(out.detections, records)
    provenance.write(out.provenance, classes=class_names, images={k: v["image_id"] for k, v in records.items()})
