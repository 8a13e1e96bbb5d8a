"""Per-layer FLOP table of one torchvision model (rule: flops_layers)."""
import pandas as pd

from dlperf.atomic import write_csv
from dlperf.flops.study import model_layers
from dlperf.report.tables import write_table
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    name = snakemake.wildcards.model
    table, summary = model_layers(name, snakemake.params.image_size, snakemake.params.flop_per_mac)
    write_csv(snakemake.output.csv, table)
    shown = table[table.macs > 0].assign(share=lambda df: 100 * df.share, mflops=lambda df: df.flops / 1e6)
    shown = shown[["layer", "type", "output_shape", "params", "mflops", "share"]]
    conv = shown[shown.type.str.startswith("Conv")]
    total = pd.DataFrame([{"layer": "all conv layers", "type": "", "output_shape": "", "params": conv.params.sum(),
                           "mflops": conv.mflops.sum(), "share": 100 * summary["conv_share"]}])
    write_table(pd.concat([shown, total], ignore_index=True).rename(columns={"share": "share (%)",
                                                                             "mflops": "MFLOPs"}),
                snakemake.output.table, formats={"MFLOPs": ".1f", "share (%)": ".2f"}, bold_rows={len(shown)})
    print(f"{name}: {summary['gmacs']:.4f} GMACs, {summary['gflops']:.4f} GFLOPs, "
          f"conv share {100 * summary['conv_share']:.2f} %")
