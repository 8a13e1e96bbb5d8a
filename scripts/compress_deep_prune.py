"""Prune an ImageNet network layer by layer to Han et al.'s rates, then re-train it with the masks fixed on validation
images that are never scored (rule: compress_deep_prune); compress_prune's job for torchvision's AlexNet and VGG-16."""
import json

import torch

from dlperf.atomic import atomic_write, write_csv, write_json
from dlperf.compress import networks
from dlperf.compress.evaluation import accuracy
from dlperf.compress.pruning import (
    check_masks_kept,
    make_permanent,
    masks,
    nonzero_params,
    prune_layers,
    sparsity_table,
)
from dlperf.data.download import file_checksum
from dlperf.flops.flops import model_flops_per_step
from dlperf.train.engine import TrainConfig, seed_everything, train
from dlperf.train.job import TrainingJob
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    p, inp, out = snakemake.params, snakemake.input, snakemake.output
    net, entry = p.network, p.model
    prefix = entry["weights"]["sha256_prefix"]
    if entry["local_weights"] and prefix and not file_checksum(inp.weights, "sha256").startswith(prefix):
        raise ValueError(f"{inp.weights}: its SHA-256 does not start with {prefix}, the published weights' "
                         f"(compress.deep.imagenet.models.{net['name']}.weights.sha256_prefix)")
    job = TrainingJob(snakemake, "compress", f"deep-{net['name']}-prune")
    cfg = TrainConfig.from_config(p.train, seed=p.seed)
    retrain, test = networks.datasets(net, inp.data)

    def score(model):
        return accuracy(model, test, p.eval_batch_size)

    model = networks.load(net, inp.weights)
    dense_top1 = score(model)
    flops_per_image = model_flops_per_step(model, networks.input_shape(net), batch=1)
    prune_layers(model, entry["keep"])
    pruned_top1 = score(model)
    kept = masks(model)
    prov = job.provenance({"compress": {"network": net, "keep": entry["keep"], "prune_train": p.train},
                           "source": inp.weights})
    seed_everything(p.seed)
    metrics = train(model.to(job.device), retrain.to(job.device), {"test": test.to(job.device)}, cfg,
                    flops_per_image=flops_per_image, **job.engine_args())
    model = model.cpu().eval()
    check_masks_kept(model, kept)
    make_permanent(model)
    table = sparsity_table(model)
    write_csv(out.sparsity, table)
    with atomic_write(out.checkpoint, "wb") as fh:
        torch.save({"model": model.state_dict(), "epoch": cfg.epochs, "best_epoch": None}, fh)
    result = {
        "network": net["name"], "achieved_sparsity": float(table.sparsity.iloc[-1]),
        "pruned_weights": int(table.zeros.iloc[-1]), "prunable_weights": int(table.params.iloc[-1]),
        "nonzero_params": nonzero_params(model), "dense_top1": dense_top1, "pruned_top1": pruned_top1,
        "retrained_top1": score(model), "retrain_images": len(retrain), "retrain_epochs": cfg.epochs,
        "scored_images": len(test),
    }
    write_json(out.pruning, result)
    prov.write(out.provenance, metrics=metrics, pruning=result, flops_per_image=flops_per_image)
    print(json.dumps(result, indent=2))
