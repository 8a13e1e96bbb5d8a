"""Deep Compression, stage 3 (rules: compress_deep_huffman, compress_deep_network_huffman): the shared model's
relative indices and codebook indices Huffman-coded (a canonical code per layer and stream), read back and scored;
and Deep Compression's computed bits per stage (formula.csv), beside which the measured sizes are reported."""
import json

from dlperf.atomic import write_csv
from dlperf.compress import codec, networks
from dlperf.compress.evaluation import accuracy
from dlperf.compress.stages import record_stage, shared_model, stage_sparsity
from dlperf.provenance import Provenance
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    p, inp, out = snakemake.params, snakemake.input, snakemake.output
    deep, net = p.deep, p.network
    prov = Provenance({"compress": {"network": net, "deep": deep}, "source": inp.codes}, device="cpu",
                      study="compress")
    _, test = networks.datasets(net, inp.data, train=False)

    def fresh():
        return networks.load(net, inp.dense)

    pruned = networks.load(net, inp.pruned)
    sparsity = stage_sparsity(p.sparsity, pruned)
    model = shared_model(pruned, inp.codes, bits=deep["bits"], iterations=deep["iterations"])
    result = record_stage("huffman", model, fresh, path=out.file, dense_path=inp.dense, gap_bits=deep["gap_bits"],
                          accuracy=lambda m: accuracy(m, test, p.eval_batch_size))
    formula = codec.formula_table(model, deep["gap_bits"])
    write_csv(out.formula, formula)
    result.update(network=net["name"], sparsity=sparsity, bits=deep["bits"], scored_images=len(test))
    prov.write(out.stage, **result)
    print(json.dumps(result, indent=2))
    print(formula.to_string(index=False))
