"""Deep Compression, stage 2 (rule: compress_deep_shared): the pruned model's conv and linear weights share a k-means
codebook per layer (2^bits centroids by layer kind), the centroids are re-trained with the masks fixed (each one's
gradient is the sum of its weights'), and the result is written as relative indices, bit-packed codebook indices and
codebooks, read back and scored."""
import json

from dlperf.compress.deep import train_only_centroids
from dlperf.compress.evaluation import accuracy, load_classifier
from dlperf.compress.stages import record_stage, save_codes, shared_model
from dlperf.data.cifar import read_cifar10
from dlperf.flops.flops import model_flops_per_step
from dlperf.train.data import DeviceImages
from dlperf.train.engine import TrainConfig, seed_everything, train
from dlperf.train.job import TrainingJob
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    p, inp, out = snakemake.params, snakemake.input, snakemake.output
    deep = p.deep
    job = TrainingJob(snakemake, "compress", "deep-shared")
    cfg = TrainConfig.from_config(deep["train"], seed=p.seed)
    data = read_cifar10(inp.data)
    n = deep["n_train"] or len(data.train_y)
    test = DeviceImages(data.test_x, data.test_y, "cpu")

    def fresh():
        return load_classifier(p.arch, inp.dense, width=p.width)

    def score(model):
        return accuracy(model, test, p.eval_batch_size)

    model = shared_model(p.arch, inp.pruned, None, width=p.width, bits=deep["bits"], iterations=deep["iterations"])
    before = score(model)
    flops_per_image = model_flops_per_step(fresh(), (3, 32, 32), batch=1)
    train_only_centroids(model)
    prov = job.provenance({"compress": {"arch": p.arch, "seed": p.seed, "deep": deep}, "source": inp.pruned})
    seed_everything(p.seed)
    metrics = train(model.to(job.device), DeviceImages(data.train_x[:n], data.train_y[:n], job.device),
                    {"test": DeviceImages(data.test_x, data.test_y, job.device)}, cfg,
                    flops_per_image=flops_per_image, **job.engine_args())
    model = model.cpu().eval()
    save_codes(model, out.codes)
    result = record_stage("shared", model, fresh, path=out.file, dense_path=inp.dense, gap_bits=deep["gap_bits"],
                          accuracy=score)
    result.update(sparsity=deep["sparsity"], bits=deep["bits"], top1_before_retraining=before,
                  retrain_images=n, retrain_epochs=cfg.epochs)
    prov.write(out.stage, **result)
    prov.write(out.provenance, metrics=metrics, flops_per_image=flops_per_image)
    print(json.dumps(result, indent=2))
