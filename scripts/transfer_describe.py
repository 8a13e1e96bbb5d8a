"""The target dataset described: images per class and split, their distribution, and sample images
(rule: transfer_describe)."""
import numpy as np
import pandas as pd

from dlperf.atomic import write_csv
from dlperf.data.imagefolder import SPLITS, class_counts, load_imagefolder_split, scan_imagefolder
from dlperf.report.figures import class_distribution, sample_grid
from dlperf.report.fidelity import of_job
from dlperf.report.style import save_figure
from dlperf.workflow import script_logging

SAMPLE_CLASSES, SAMPLES_PER_CLASS = 2, 4

with script_logging(snakemake.log[0]):
    index = scan_imagefolder(snakemake.input.data, SPLITS)   # fails naming an empty or missing class folder
    classes = pd.DataFrame(class_counts(index))[["class", "n_train", "n_val", "n_test"]]
    write_csv(snakemake.output.classes, classes)
    fidelity = of_job(snakemake)
    save_figure(class_distribution(classes), snakemake.output.distribution, fidelity)
    # The first training images of the first and the middle class: two classes apart in the sorted order.
    images, labels = load_imagefolder_split(index, "train", snakemake.params.image_size)
    shown = [0, len(index.classes) // 2] if len(index.classes) > 1 else [0]
    samples = {index.classes[c]: list(images[np.flatnonzero(labels == c)[:SAMPLES_PER_CLASS]]) for c in shown}
    save_figure(sample_grid(samples), snakemake.output.samples, fidelity)
    print(classes.to_string(index=False))
