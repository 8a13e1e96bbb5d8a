"""ssd_eval_openimages' AP per class before and after fine-tuning, as a table and a bar chart (rule:
ssd_openimages_ap_figure)."""
from dlperf.detection.study import comparison_bars, comparison_frame, read_ap_csv
from dlperf.report.fidelity import of_job
from dlperf.report.style import save_figure
from dlperf.report.tables import write_table
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    comparison = comparison_frame(read_ap_csv(snakemake.input.before), read_ap_csv(snakemake.input.after))
    write_table(comparison, snakemake.output.table, formats={c: ".4f" for c in ("ap_before", "ap_after", "change")},
                bold_rows={len(comparison) - 1})
    save_figure(comparison_bars(comparison), snakemake.output.figure, of_job(snakemake))   # the evaluation's record
