"""Fine-tune the Optimus model under fake quantization (QAT) at one variant's bit widths, and write its QDQ ONNX model
(rule: compress_qat_train)."""
from dlperf.compress.evaluation import load_classifier
from dlperf.compress.qat import export_qdq, prepare_qat
from dlperf.data.cifar import read_cifar10
from dlperf.flops.flops import model_flops_per_step
from dlperf.train.data import DeviceImages
from dlperf.train.engine import TrainConfig, seed_everything, train
from dlperf.train.job import TrainingJob
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    wc, p = snakemake.wildcards, snakemake.params
    seed = int(wc.seed)
    job = TrainingJob(snakemake, "compress", f"{wc.arch}-{wc.device}-s{seed}-{wc.variant}")
    device = job.device
    cfg = TrainConfig.from_config(p.train, seed=seed)
    data = read_cifar10(snakemake.input.data)
    n = p.n_train or len(data.train_y)
    test = DeviceImages(data.test_x, data.test_y, device)

    model = load_classifier(wc.arch, snakemake.input.checkpoint, width=p.width, device=device)
    flops_per_image = model_flops_per_step(model, (3, 32, 32), batch=1)
    # reduce_range is for the integer kernels (7-bit weights against VPMADDUBSW's saturation); a weight-only model
    # computes in float
    qat = prepare_qat(model, p.bits["weight_bits"], p.bits["activation_bits"], per_channel=p.quantize["per_channel"],
                      reduce_range=p.quantize["reduce_range"] and p.bits["activation_bits"] is not None)
    prov = job.provenance({"compress": {"arch": wc.arch, "seed": seed, "variant": wc.variant, "bits": p.bits,
                                        "qat": {"n_train": p.n_train, "train": p.train}, "quantize": p.quantize},
                           "source": snakemake.input.checkpoint})
    seed_everything(seed)
    metrics = train(qat, DeviceImages(data.train_x[:n], data.train_y[:n], device), {"test": test}, cfg,
                    flops_per_image=flops_per_image, **job.engine_args())
    sample = next(test.batches(2, shuffle=False))[0].cpu()
    exported = export_qdq(qat, sample, snakemake.output.onnx)
    prov.write(snakemake.output.provenance, metrics=metrics, retrain_images=n,
               nodes=len(exported.proto.graph.node))
