"""The exported model in a Triton-layout repository: <root>/ssd/1/model.onnx and <root>/ssd/config.pbtxt
(rule: serve_model_repository)."""
from pathlib import Path

from dlperf.export.triton import write_model_repository
from dlperf.provenance import Provenance
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    p = snakemake.params
    provenance = Provenance({"serve": {"batching": p.batching}})
    root = Path(snakemake.output.config).parents[1]  # <root>/<name>/config.pbtxt
    write_model_repository(root, p.name, 1, snakemake.input.onnx, p.batching["max_batch_size"],
                                  round(1000 * p.batching["max_delay_ms"]))
    print(Path(snakemake.output.config).read_text())
    provenance.write(snakemake.output.provenance, repository=str(root), model=p.name, versions=[1])
