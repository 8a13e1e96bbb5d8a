"""The target dataset's class distribution and sample images, from transfer_describe's records (rule:
transfer_render_dataset)."""
import numpy as np
import pandas as pd

from dlperf.report.figures import class_distribution, sample_grid
from dlperf.report.fidelity import of_job
from dlperf.report.style import save_figure
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    fidelity = of_job(snakemake)   # the dataset's record
    save_figure(class_distribution(pd.read_csv(snakemake.input.classes)), snakemake.output.distribution, fidelity)
    with np.load(snakemake.input.samples) as archive:   # no pickle: uint8 images and their class names
        images, names = archive["images"], archive["classes"]
    samples = {str(name): list(images[names == name]) for name in dict.fromkeys(names)}
    save_figure(sample_grid(samples), snakemake.output.samples, fidelity)
