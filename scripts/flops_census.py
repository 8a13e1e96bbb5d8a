"""Parameters and multiply-accumulates of every network the course trains, at its published configuration
(rule: flops_census)."""
from dlperf.atomic import write_csv
from dlperf.flops.census import PUBLISHED, census
from dlperf.report.tables import write_table
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    table = census(list(PUBLISHED), snakemake.params.flop_per_mac)
    write_csv(snakemake.output.csv, table)
    write_table(table.rename(columns={"published_as": "published as"}), snakemake.output.table,
                formats={"gmacs": ".4f"})
    print(table.to_string(index=False))
