"""Deep Compression, stage 2 (rules: compress_deep_shared, compress_deep_network_shared): the pruned model's conv and
linear weights share a k-means codebook per layer (2^bits centroids by layer kind), the centroids are re-trained with
the masks fixed (each one's gradient is the sum of its weights'), and the result is written as relative indices,
bit-packed codebook indices and codebooks, read back and scored."""
import json

from dlperf.compress import networks
from dlperf.compress.deep import train_only_centroids
from dlperf.compress.evaluation import accuracy
from dlperf.compress.stages import record_stage, save_codes, shared_model, stage_sparsity
from dlperf.flops.flops import model_flops_per_step
from dlperf.train.engine import TrainConfig, seed_everything, train
from dlperf.train.job import TrainingJob
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    p, inp, out = snakemake.params, snakemake.input, snakemake.output
    deep, net = p.deep, p.network
    job = TrainingJob(snakemake, "compress", p.run)
    cfg = TrainConfig.from_config(p.train, seed=p.seed)
    retrain, test = networks.datasets(net, inp.data, n_train=p.n_train)

    def fresh():
        return networks.load(net, inp.dense)

    def score(model):
        return accuracy(model, test, p.eval_batch_size)

    pruned = networks.load(net, inp.pruned)
    sparsity = stage_sparsity(p.sparsity, pruned)
    model = shared_model(pruned, None, bits=deep["bits"], iterations=deep["iterations"])
    before = score(model)
    flops_per_image = model_flops_per_step(fresh(), networks.input_shape(net), batch=1)
    train_only_centroids(model)
    prov = job.provenance({"compress": {"network": net, "seed": p.seed, "deep": deep, "train": p.train},
                           "source": inp.pruned})
    seed_everything(p.seed)
    metrics = train(model.to(job.device), retrain.to(job.device), {"test": test.to(job.device)}, cfg,
                    flops_per_image=flops_per_image, **job.engine_args())
    model = model.cpu().eval()
    save_codes(model, out.codes)
    result = record_stage("shared", model, fresh, path=out.file, dense_path=inp.dense, gap_bits=deep["gap_bits"],
                          accuracy=score)
    result.update(network=net["name"], sparsity=sparsity, bits=deep["bits"], top1_before_retraining=before,
                  retrain_images=len(retrain), retrain_epochs=cfg.epochs, scored_images=len(test))
    prov.write(out.stage, **result)
    prov.write(out.provenance, metrics=metrics, flops_per_image=flops_per_image)
    print(json.dumps(result, indent=2))
