"""A drawing of an ONNX graph with onnx's ``net_drawer`` conventions, and a page of its nodes' doc strings.

Why our own drawer rather than pinning ``onnx<=1.22`` (the last release with ``onnx/tools/net_drawer.py``;
onnx 1.23 removed it): a pin would hold the whole project's onnx back, or need a second environment for one
step, and net_drawer also needs ``pydot``, which nothing else here uses. What net_drawer does is small and
fully specified by its source, so this module reproduces its output conventions:

* op nodes: label ``{name}/{op_type} (op#{i})`` (``{op_type} (op#{i})`` for a nameless node), then one line
  ``input{k} {tensor}`` per input and ``output{k} {tensor}`` per output; the label is also the node's id;
  style ``shape=box, color="#0F9D58", style=filled, fontcolor="#FFFFFF"``;
* tensor ("blob") nodes: ``shape=octagon``, label the tensor's name, id the name plus a counter that grows
  each time the tensor is written again, so a rewritten name becomes a new node;
* edges tensor → op for every input, op → tensor for every output; ``rankdir`` LR by default;
* ``embed_docstring``: each op node gets ``URL="javascript:alert('<doc string>')"``, the doc string JSON-escaped
  with ``<`` and ``>`` removed, which a browser shows when the node of the SVG is clicked.

Two differences, both fixes: a ``'`` or ``"`` in the doc string is escaped as ``\\'`` (net_drawer left a raw
``'`` that ended the JavaScript string early), and the node also gets the doc string as its ``tooltip``, so a
viewer that blocks ``javascript:`` links still shows it on hover. The DOT text is written as is; net_drawer's
``pydot.write_dot`` ran it through Graphviz first, which only adds layout coordinates. The command line is
net_drawer's: ``python -m dlperf.export.net_drawer --input M.onnx --output M.dot [--rankdir LR]
[--embed_docstring]``, then ``dot -Tsvg M.dot -o M.svg`` (:func:`render_svg`).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import onnx

from dlperf.atomic import atomic_write

OP_STYLE = {"shape": "box", "color": "#0F9D58", "style": "filled", "fontcolor": "#FFFFFF"}
BLOB_STYLE = {"shape": "octagon"}


def _escape_label(name: str) -> str:
    """net_drawer's escaping: the JSON string literal, quotes included, used as a DOT quoted string."""
    return json.dumps(name)


def docstring_url(doc_string: str) -> str:
    """``javascript:alert('...')`` showing ``doc_string`` (net_drawer's ``_form_and_sanitize_docstring``)."""
    body = json.dumps(doc_string)[1:-1].replace("'", "\\'").replace('\\"', "\\'")
    return "javascript:alert('" + body.replace("<", "").replace(">", "") + "')"


def op_label(node: onnx.NodeProto, op_id: int) -> str:
    label = f"{node.name}/{node.op_type} (op#{op_id})" if node.name else f"{node.op_type} (op#{op_id})"
    label += "".join(f"\n input{i} {name}" for i, name in enumerate(node.input))
    return label + "".join(f"\n output{i} {name}" for i, name in enumerate(node.output))


def _attributes(attributes: dict[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in attributes.items())


def _quoted(value: str) -> str:
    """A DOT quoted string whose content is ``value`` verbatim (DOT's only escape is ``\\"``)."""
    return '"' + value.replace('"', '\\"') + '"'


def graph_dot(graph: onnx.GraphProto, name: str | None = None, rankdir: str = "LR",
              embed_docstring: bool = False) -> str:
    """The DOT text of ``graph`` (see the module doc for the conventions)."""
    lines = [f"digraph {_quoted(name or graph.name or 'G')} {{", f"rankdir={rankdir};"]
    blob_ids: dict[str, str] = {}
    writes: dict[str, int] = defaultdict(int)
    op_style = {key: _quoted(value) for key, value in OP_STYLE.items()}
    blob_style = {key: _quoted(value) for key, value in BLOB_STYLE.items()}
    for op_id, node in enumerate(graph.node):
        op_id_text = _escape_label(op_label(node, op_id))
        attributes = dict(op_style)
        if embed_docstring:
            attributes["URL"] = _quoted(docstring_url(node.doc_string))
            attributes["tooltip"] = _escape_label(node.doc_string or node.op_type)
        lines.append(f"{op_id_text} [{_attributes(attributes)}];")
        for tensor in node.input:
            if tensor not in blob_ids:
                blob_ids[tensor] = _escape_label(tensor + str(writes[tensor]))
                lines.append(f"{blob_ids[tensor]} [{_attributes({'label': _escape_label(tensor), **blob_style})}];")
            lines.append(f"{blob_ids[tensor]} -> {op_id_text};")
        for tensor in node.output:
            if tensor in blob_ids:
                writes[tensor] += 1
            blob_ids[tensor] = _escape_label(tensor + str(writes[tensor]))
            lines.append(f"{blob_ids[tensor]} [{_attributes({'label': _escape_label(tensor), **blob_style})}];")
            lines.append(f"{op_id_text} -> {blob_ids[tensor]};")
    return "\n".join(lines + ["}"]) + "\n"


def render_svg(dot_path: str | os.PathLike, svg_path: str | os.PathLike, timeout: float = 300) -> Path:
    """``dot -Tsvg dot_path -o svg_path`` (Graphviz), written atomically; a clear error without Graphviz."""
    dot = shutil.which("dot")
    if dot is None:
        raise FileNotFoundError("Graphviz's `dot` is not on PATH: install graphviz (apt-get install graphviz)")
    result = subprocess.run([dot, "-Tsvg", str(dot_path)], capture_output=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"dot -Tsvg {dot_path} failed: {result.stderr.decode(errors='replace')[-2000:]}")
    with atomic_write(svg_path, "wb") as handle:
        handle.write(result.stdout)
    return Path(svg_path)


def docstrings_markdown(model: onnx.ModelProto, title: str = "Doc strings") -> str:
    """Markdown with the doc string of the first node of each op type (in order of first appearance)."""
    first: dict[str, tuple[int, onnx.NodeProto]] = {}
    counts: dict[str, int] = defaultdict(int)
    for op_id, node in enumerate(model.graph.node):
        counts[node.op_type] += 1
        first.setdefault(node.op_type, (op_id, node))
    parts = [f"# {title}\n", f"One node of each of the {len(first)} op types of the graph "
                             f"({len(model.graph.node)} nodes): its doc string, the PyTorch stack trace it came from.\n"]
    for op_type, (op_id, node) in first.items():
        fence = "~~~~" if "```" in node.doc_string else "```"
        parts.append(f"## {op_type}\n\n`{node.name or op_type}` (op#{op_id}), one of {counts[op_type]} "
                     f"{op_type} node{'s' if counts[op_type] > 1 else ''}.\n\n"
                     f"{fence}\n{node.doc_string or '(no doc string)'}\n{fence}\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dlperf.export.net_drawer", description="ONNX net drawer")
    parser.add_argument("--input", required=True, help="The input protobuf file.")
    parser.add_argument("--output", required=True, help="The output protobuf file.")
    parser.add_argument("--rankdir", default="LR", help="The rank direction of the pydot graph.")
    parser.add_argument("--embed_docstring", action="store_true",
                        help="Embed docstring as javascript alert. Useful for SVG format.")
    args = parser.parse_args(argv)
    model = onnx.load(args.input, load_external_data=False)
    with atomic_write(args.output) as handle:
        handle.write(graph_dot(model.graph, model.graph.name, args.rankdir, args.embed_docstring))


if __name__ == "__main__":
    main()
