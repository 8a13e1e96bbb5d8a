"""Deep Compression, stage 1 (rule: compress_deep_pruned): the dense FP32 checkpoint every ratio divides, and the
pruned model written as relative indices and FP32 values, read back and scored."""
import json

from dlperf.compress.evaluation import accuracy, load_classifier
from dlperf.compress.stages import record_stage, write_dense
from dlperf.data.cifar import read_cifar10
from dlperf.provenance import Provenance
from dlperf.train.data import DeviceImages
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    p, inp, out = snakemake.params, snakemake.input, snakemake.output
    prov = Provenance({"compress": {"arch": p.arch, "deep": p.deep}, "source": inp.pruned}, device="cpu",
                      study="compress")
    data = read_cifar10(inp.data)
    test = DeviceImages(data.test_x, data.test_y, "cpu")

    def fresh():
        return load_classifier(p.arch, inp.dense, width=p.width)

    def score(model):
        return accuracy(model, test, p.eval_batch_size)

    dense = fresh()
    write_dense(dense, out.dense)
    result = record_stage("pruned", load_classifier(p.arch, inp.pruned, width=p.width), fresh, path=out.file,
                          dense_path=out.dense, gap_bits=p.deep["gap_bits"], accuracy=score)
    result.update(sparsity=p.deep["sparsity"], bits=None, dense_top1=score(dense))
    prov.write(out.stage, **result)
    print(json.dumps(result, indent=2))
