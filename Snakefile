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
include: "rules/optimus.smk"
include: "rules/flops.smk"
include: "rules/depth.smk"
include: "rules/transfer.smk"
include: "rules/ssd.smk"
include: "rules/compress.smk"
include: "rules/report.smk"
include: "rules/serve.smk"


rule all:
    input:
        all_outputs(),
    default_target: True
