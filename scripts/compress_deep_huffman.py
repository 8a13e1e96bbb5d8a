"""Deep Compression, stage 3 (rule: compress_deep_huffman): the shared model's relative indices and codebook indices
Huffman-coded (a canonical code per layer and stream), read back and scored; and Deep Compression's computed bits
per stage (formula.csv), beside which the measured sizes are reported."""
import json

from dlperf.atomic import write_csv
from dlperf.compress import codec
from dlperf.compress.evaluation import accuracy, load_classifier
from dlperf.compress.stages import record_stage, shared_model
from dlperf.data.cifar import read_cifar10
from dlperf.provenance import Provenance
from dlperf.train.data import DeviceImages
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    p, inp, out = snakemake.params, snakemake.input, snakemake.output
    deep = p.deep
    prov = Provenance({"compress": {"arch": p.arch, "deep": deep}, "source": inp.codes}, device="cpu",
                      study="compress")
    data = read_cifar10(inp.data)
    test = DeviceImages(data.test_x, data.test_y, "cpu")

    def fresh():
        return load_classifier(p.arch, inp.dense, width=p.width)

    model = shared_model(p.arch, inp.pruned, inp.codes, width=p.width, bits=deep["bits"],
                         iterations=deep["iterations"])
    result = record_stage("huffman", model, fresh, path=out.file, dense_path=inp.dense, gap_bits=deep["gap_bits"],
                          accuracy=lambda m: accuracy(m, test, p.eval_batch_size))
    formula = codec.formula_table(model, deep["gap_bits"])
    write_csv(out.formula, formula)
    result.update(sparsity=deep["sparsity"], bits=deep["bits"])
    prov.write(out.stage, **result)
    print(json.dumps(result, indent=2))
    print(formula.to_string(index=False))
