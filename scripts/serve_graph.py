"""The exported graph drawn with onnx's net_drawer conventions (--embed_docstring), rendered to SVG by Graphviz,
and one doc string per op type (rule: serve_graph)."""
import onnx

from dlperf.atomic import atomic_write
from dlperf.export.net_drawer import docstrings_markdown, graph_dot, render_svg
from dlperf.provenance import Provenance
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    out = snakemake.output
    provenance = Provenance({"serve": {"graph": {"rankdir": snakemake.params.rankdir, "embed_docstring": True}}})
    model = onnx.load(snakemake.input.onnx)
    with atomic_write(out.dot) as handle:
        handle.write(graph_dot(model.graph, model.graph.name, snakemake.params.rankdir, embed_docstring=True))
    render_svg(out.dot, out.svg)
    with atomic_write(out.docstrings) as handle:
        handle.write(docstrings_markdown(model, title="Doc strings of results/serve/onnx/ssd.onnx"))
    print(f"drew {len(model.graph.node)} op nodes")
    provenance.write(out.provenance, op_nodes=len(model.graph.node))
