# dlperf: every result of a deep-learning-systems course, from raw data to a compiled report.
# This file is a table of contents. The rules live in rules/, the code they call in src/dlperf/.
from snakemake.utils import min_version, validate

min_version("9.0")


# The embedded default, unless --configfile names another: Snakemake would otherwise merge nested keys of both
# (the default's device labels would join the full config's).
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


validate(config, "config/schema.yaml")


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/devices.smk"


# A study is on when its config section is present; its rules are included only then, in the order data flows
# (a study's rules may name an earlier study's outputs as rules.<name>.output).
for study in enabled_studies():

    include: f"rules/{study}.smk"


include: "rules/report.smk"


rule all:
    default_target: True
    input:
        rules.report_pdf.output.pdf,
        UNREPORTED,
