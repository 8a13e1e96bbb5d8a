"""The target dataset described: images per class and split, and sample images (rule: transfer_describe; rule
transfer_render_dataset draws them)."""
import numpy as np
import pandas as pd

from dlperf.atomic import atomic_write, write_csv
from dlperf.data.imagefolder import SPLITS, class_counts, load_imagefolder_split, scan_imagefolder
from dlperf.workflow import script_logging

SAMPLE_CLASSES, SAMPLES_PER_CLASS = 2, 4

with script_logging(snakemake.log[0]):
    index = scan_imagefolder(snakemake.input.data, SPLITS)   # fails naming an empty or missing class folder
    classes = pd.DataFrame(class_counts(index))[["class", "n_train", "n_val", "n_test"]]
    write_csv(snakemake.output.classes, classes)
    # The first training images of the first and the middle class: two classes apart in the sorted order.
    images, labels = load_imagefolder_split(index, "train", snakemake.params.image_size)
    shown = [0, len(index.classes) // 2] if len(index.classes) > 1 else [0]
    picked = [np.flatnonzero(labels == c)[:SAMPLES_PER_CLASS] for c in shown]
    with atomic_write(snakemake.output.samples, "wb") as fh:
        np.savez_compressed(fh, images=images[np.concatenate(picked)],
                            classes=np.array([index.classes[c] for c, rows in zip(shown, picked) for _ in rows]))
    print(classes.to_string(index=False))
