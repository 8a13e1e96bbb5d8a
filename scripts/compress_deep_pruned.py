"""Deep Compression, stage 1 (rules: compress_deep_pruned, compress_deep_network_pruned): the dense FP32 checkpoint
every ratio divides, and the pruned model written as relative indices and FP32 values, read back and scored."""
import json

from dlperf.compress import networks
from dlperf.compress.evaluation import accuracy
from dlperf.compress.stages import record_stage, stage_sparsity, write_dense
from dlperf.provenance import Provenance
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    p, inp, out = snakemake.params, snakemake.input, snakemake.output
    net = p.network
    prov = Provenance({"compress": {"network": net, "deep": p.deep}, "source": inp.pruned}, device="cpu",
                      study="compress")
    _, test = networks.datasets(net, inp.data, train=False)

    def fresh():
        return networks.load(net, inp.dense)

    def score(model):
        return accuracy(model, test, p.eval_batch_size)

    dense = fresh()
    write_dense(dense, out.dense)
    pruned = networks.load(net, inp.pruned)
    sparsity = stage_sparsity(p.sparsity, pruned)
    result = record_stage("pruned", pruned, fresh, path=out.file, dense_path=out.dense, gap_bits=p.deep["gap_bits"],
                          accuracy=score)
    result.update(network=net["name"], sparsity=sparsity, bits=None, dense_top1=score(dense), scored_images=len(test))
    prov.write(out.stage, **result)
    print(json.dumps(result, indent=2))
