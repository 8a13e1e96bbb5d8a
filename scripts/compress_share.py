"""Deep Compression's weight sharing at every configured codebook size k: compression ratio, size and accuracy
(rule: compress_share)."""
import pandas as pd

from dlperf.atomic import write_csv
from dlperf.compress.evaluation import accuracy, eager_latency, load_classifier
from dlperf.compress.pruning import nonzero_params
from dlperf.compress.sharing import index_bits, share_weights, shared_size_bytes
from dlperf.data.cifar import read_cifar10
from dlperf.provenance import Provenance
from dlperf.train.data import DeviceImages
from dlperf.timing import TimedAlone
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    p, out = snakemake.params, snakemake.output
    timed = TimedAlone(snakemake)
    prov = Provenance({"compress": {"arch": p.arch, "share": p.share, "latency": p.latency},
                       "threads": timed.threads, "source": snakemake.input.checkpoint},
                      device="cpu", study="compress")
    data = read_cifar10(snakemake.input.data)
    model = load_classifier(p.arch, snakemake.input.checkpoint, width=p.width)
    test = DeviceImages(data.test_x, data.test_y, "cpu")
    timing = {"warmup": p.latency["warmup"], "repeats": p.latency["repeats"]}
    batch = p.latency["batch_sizes"][0]
    dense_top1 = accuracy(model, test, p.eval_batch_size)
    dense_ms = 1e3 * eager_latency(model, batch, **timing).median_s
    rows, layers = [], []
    for k in p.share["clusters"]:
        shared, table = share_weights(model, k, p.share["iterations"])
        total = table.iloc[-1]
        rows.append({"clusters": k, "index_bits": index_bits(k), "bits_before": int(total.bits_before),
                     "bits_after": int(total.bits_after), "ratio": float(total.ratio),
                     "size_bytes": shared_size_bytes(shared, k), "nonzero_params": nonzero_params(shared),
                     "top1": accuracy(shared, test, p.eval_batch_size), "dense_top1": dense_top1,
                     "latency_ms": 1e3 * eager_latency(shared, batch, **timing).median_s,
                     "dense_latency_ms": dense_ms, "latency_batch": batch})
        layers.append(table)
    sharing = pd.DataFrame(rows)
    write_csv(out.csv, sharing)
    write_csv(out.layers, pd.concat(layers))
    prov.write(out.provenance, sharing=rows, timing=timed.record())
    print(sharing.to_string(index=False))
