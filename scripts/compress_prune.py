"""Prune a trained Optimus model to one sparsity, then re-train it with the masks fixed (rule: compress_prune)."""
import json

import torch

from dlperf.atomic import atomic_write, write_csv, write_json
from dlperf.compress.evaluation import accuracy, load_classifier
from dlperf.compress.pruning import (
    check_masks_kept,
    dense_size_bytes,
    make_permanent,
    masks,
    nonzero_params,
    prune_global,
    sparse_size_bytes,
    sparsity_table,
)
from dlperf.data.cifar import read_cifar10
from dlperf.flops.flops import model_flops_per_step
from dlperf.train.data import DeviceImages
from dlperf.train.engine import TrainConfig, seed_everything, train
from dlperf.train.job import TrainingJob
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    wc, p = snakemake.wildcards, snakemake.params
    seed, sparsity = int(wc.seed), float(wc.sparsity)
    job = TrainingJob(snakemake, "compress", f"{wc.arch}-{wc.device}-s{seed}-sp{wc.sparsity}")
    device = job.device
    cfg = TrainConfig.from_config(p.train, seed=seed)
    data = read_cifar10(snakemake.input.data)
    n = p.n_train or len(data.train_y)
    test = DeviceImages(data.test_x, data.test_y, device)

    model = load_classifier(wc.arch, snakemake.input.checkpoint, width=p.width, device=device)
    dense = {"test_acc": accuracy(model, test, cfg.eval_batch_size), "nonzero_params": nonzero_params(model),
             "size_bytes": dense_size_bytes(model.state_dict())}
    flops_per_image = model_flops_per_step(model, (3, 32, 32), batch=1)

    prune_global(model, sparsity)
    pruned_acc = accuracy(model, test, cfg.eval_batch_size)
    kept = masks(model)
    prov = job.provenance({"compress": {"arch": wc.arch, "seed": seed, "sparsity": sparsity,
                                        "prune": {"n_train": p.n_train, "train": p.train}},
                           "source": snakemake.input.checkpoint})
    seed_everything(seed)
    metrics = train(model, DeviceImages(data.train_x[:n], data.train_y[:n], device), {"test": test}, cfg,
                    flops_per_image=flops_per_image, **job.engine_args())
    check_masks_kept(model, kept)
    make_permanent(model)
    table = sparsity_table(model)
    write_csv(snakemake.output.sparsity, table)
    with atomic_write(snakemake.output.checkpoint, "wb") as fh:   # plain weights: loads into cifar_model as is
        torch.save({"model": model.state_dict(), "epoch": cfg.epochs, "best_epoch": None, "sparsity": sparsity}, fh)
    result = {
        "arch": wc.arch, "sparsity": sparsity, "achieved_sparsity": float(table.sparsity.iloc[-1]),
        "pruned_weights": int(table.zeros.iloc[-1]), "prunable_weights": int(table.params.iloc[-1]),
        "nonzero_params": nonzero_params(model), "size_bytes": sparse_size_bytes(model),
        "pruned_test_acc": pruned_acc, "retrained_test_acc": accuracy(model, test, cfg.eval_batch_size),
        "retrain_images": n, "retrain_epochs": cfg.epochs,
        **{f"dense_{k}": v for k, v in dense.items()},
    }
    write_json(snakemake.output.pruning, result)
    prov.write(snakemake.output.provenance, metrics=metrics, pruning=result, flops_per_image=flops_per_image)
    print(json.dumps(result, indent=2))
