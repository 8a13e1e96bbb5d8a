# The report: one LaTeX document with a section per study enabled in the config, every number a generated macro.
#
# latexmk runs in the working directory (the repository root, or snakemake --directory's), so report/*.tex name
# results by their path from there (\input{results/report/values}, \includegraphics{results/optimus/...pdf}) and
# the report's own sources by their path in the repository (\input{report/preamble}), which TEXINPUTS finds.
# By hand, from the repository root: latexmk -pdf -outdir=results/report/build report/report.tex
#
# Adding a study: write report/sections/<study>.tex, its values function in dlperf.report.values.STUDIES, and its
# entry in REPORT_STUDIES (rules/common.smk), which names the results the section reads and includes.


rule report_values:
    input:
        **report_value_inputs(),
        provenance=report_provenance(),
    output:
        values="results/report/values.tex",
        sections="results/report/sections.tex",
    params:
        scale=config["scale"],
        studies=list(reported_studies()),
        study_params={study: spec["params"] for study, spec in reported_studies().items()},
        sections=report_section_files(),
    log:
        "logs/report/values.log",
    benchmark:
        "benchmarks/report/values.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/report_values.py"


rule report_pdf:
    input:
        # LaTeX sources of the repository: local() keeps them out of a remote storage provider (cloud profiles).
        main=local(workflow_source("report/report.tex")),
        preamble=local(workflow_source("report/preamble.tex")),
        sections=[local(workflow_source(f)) for f in report_section_files()],
        values="results/report/values.tex",
        section_list="results/report/sections.tex",
        includes=report_includes(),
    output:
        pdf=report("results/report/report.pdf", category="Report"),
    params:
        build_dir="results/report/build",
    log:
        "logs/report/pdf.log",
    benchmark:
        "benchmarks/report/pdf.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/report_pdf.py"
