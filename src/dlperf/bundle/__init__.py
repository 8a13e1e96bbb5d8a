"""A finished run's results as one archive, and the report redrawn from it anywhere (``make bundle``,
``make figures BUNDLE=...``).

The workflow's rules are of two kinds. *Measuring* rules download, prepare data, train, evaluate and time: their
results are CSV and JSON files (and checkpoints), and they need datasets, weights and the device that measured.
*Render* rules (:data:`RENDER_RULES`) read only results: they compute fits and macros and draw every figure and
table of the report, and the report itself. A bundle holds exactly what the render rules read that no render rule
writes: it is found by asking Snakemake for the render rules' DAG of the report (``--allowed-rules``), so it cannot
drift from the rules. ``figures`` unpacks a bundle and runs Snakemake restricted to the render rules, so no
download, training or timing job can be planned; each render rule lists its code as inputs (rules/common.smk's
``render_code``), so an edited plotting function redraws only the figures it draws.

The archive (:mod:`dlperf.bundle.archive`) is a gzipped tar: ``MANIFEST.json`` (layout version, the config files and
commit that made the run, each file's SHA-256 and size), the config files under ``config/``, and the results under
``files/`` by their path in the working directory.
"""

# The rules that only read results (see the module docstring). A rule here must not read resources/ (datasets,
# weights) nor time anything: `dlperf.bundle.archive` refuses to pack a DAG in which one does, naming it.
RENDER_RULES = frozenset({
    # FLOPs: analytic counts and tables, and the drawing of flops_measure's timings
    "flops_layers", "flops_summary", "flops_census", "flops_peak_time", "flops_ppp_figure", "flops_training_ppp",
    "flops_values",
    # Optimus: the loss and speed models are fitted to the runs' CSVs
    "optimus_learning_curves", "optimus_loss_fits", "optimus_prediction", "optimus_time_to_accuracy",
    "optimus_values",
    "depth_summary", "depth_grad_flow", "depth_values",
    "transfer_render_dataset", "transfer_summary", "transfer_render_timing", "transfer_values",
    "ssd_voc_ap_figure", "ssd_openimages_ap_figure", "ssd_values",
    "serve_bench_table", "serve_values",
    "compress_pruning_figure", "compress_summary", "compress_deep_stages", "compress_values",
    "report_claims", "report_figures", "report_values", "report_pdf",
})

# The report: what `figures` builds (every figure, table and macro file is among its inputs).
REPORT = "results/report/report.pdf"
