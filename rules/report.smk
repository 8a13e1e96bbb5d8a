# The report: one LaTeX document with a section per enabled study, every number a generated macro.
#
# latexmk runs in the working directory (the repository root, or snakemake --directory's), so report/*.tex name
# results by their path from there (\input{results/report/values}, \resultfigure{results/optimus/...pdf}) and the
# report's own sources by their path in the repository (\input{report/preamble}), which TEXINPUTS finds.
# By hand, from the repository root: latexmk -pdf -outdir=results/report/build report/report.tex
#
# Adding a study: its rules end in a <study>_values rule writing results/<study>/values.json (the macros its
# section quotes), and report/sections/<study>.tex names every result it includes literally: those names are the
# PDF's inputs. A path a macro builds (a figure per device label) is an input of the study's values rule instead.
rule report_claims:
    input:
        results=claim_inputs(),
        code=render_code("report_claims"),
    output:
        csv="results/report/claims.csv",
        table="results/report/tables/claims.tex",
        markdown="results/report/tables/claims.md",
        values="results/report/claims.json",
    log:
        "logs/report/claims.log",
    benchmark:
        "benchmarks/report/claims.tsv"
    conda:
        CONDA_ENV
    params:
        claims=CLAIMS,
        settings=CLAIM_SETTINGS,
        studies=enabled_studies(),
        strict=config["claims_strict"] in (True, "true"),
    script:
        "../scripts/report_claims.py"


rule report_figures:
    input:
        figures=[path for path in report_includes() if Path(path).suffix in (".pdf", ".png")],
        code=render_code("report_figures"),
    output:
        fidelity="results/report/figures.tex",
    log:
        "logs/report/figures.log",
    benchmark:
        "benchmarks/report/figures.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/report_figures.py"


rule report_values:
    input:
        # the scorecard's counts first, then each study's macros in report order
        values=[
            rules.report_claims.output.values,
            *[getattr(rules, f"{study}_values").output.values for study in reported_studies()],
        ],
        code=render_code("report_values"),
    output:
        values="results/report/values.tex",
        sections="results/report/sections.tex",
    log:
        "logs/report/values.log",
    benchmark:
        "benchmarks/report/values.tsv"
    conda:
        CONDA_ENV
    params:
        scale=config["scale"],
        sections=report_sections(),
    script:
        "../scripts/report_values.py"


rule report_pdf:
    input:
        # LaTeX sources of the repository: local() keeps them out of a remote storage provider (cloud profiles).
        main=local(workflow_source("report/report.tex")),
        preamble=local(workflow_source("report/preamble.tex")),
        sections=[local(workflow_source(f)) for f in report_sections()],
        values=rules.report_values.output.values,
        section_list=rules.report_values.output.sections,
        claims=rules.report_claims.output.table,
        # what the sections name, and what a macro names (a figure per device label, the demo's panels), which its
        # study's values rule lists; each path once
        includes=report_includes(),
        fidelity=rules.report_figures.output.fidelity,
        code=render_code("report_pdf"),
    output:
        pdf=report("results/report/report.pdf", category="Report"),
    log:
        "logs/report/pdf.log",
    benchmark:
        "benchmarks/report/pdf.tsv"
    conda:
        CONDA_ENV
    params:
        build_dir="results/report/build",
    script:
        "../scripts/report_pdf.py"
