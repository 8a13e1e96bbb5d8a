"""ssd_eval_voc's AP per VOC class as a table and a bar chart (rule: ssd_voc_ap_figure)."""
from dlperf.detection.study import ap_bars, read_ap_csv
from dlperf.report.fidelity import of_job
from dlperf.report.style import save_figure
from dlperf.report.tables import write_table
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    frame = read_ap_csv(snakemake.input.ap)
    write_table(frame.rename(columns={"ap": "AP"}), snakemake.output.table, formats={"AP": ".4f"},
                bold_rows={len(frame) - 1})
    save_figure(ap_bars(frame), snakemake.output.figure, of_job(snakemake))   # the evaluation's record
