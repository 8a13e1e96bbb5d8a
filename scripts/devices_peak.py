"""The peak FLOP/s of one device label: the fastest of its dense-product kernels, or taken from config
(rule: devices_peak)."""
import json

from dlperf.atomic import write_json
from dlperf.flops.peak import device_name, peak_kernels
from dlperf.train.engine import select_device
from dlperf.timing import TimedAlone
from dlperf.workflow import script_logging

with script_logging(snakemake.log[0]):
    timed = TimedAlone(snakemake)
    label, p = snakemake.wildcards.device, snakemake.params
    device = select_device(p.accelerator)
    override = p.override_tflops
    if override:
        peak, source = override * 1e12, "config peak.override_tflops"
    else:
        n = p.matmul_size
        kernels = peak_kernels(device, n=n, repeats=p.repeats)
        best = max(kernels, key=kernels.get)
        peak = kernels[best]
        source = (f"measured: median of {p.repeats} {n}x{n} matrix products (2n^3 FLOPs each), the fastest "
                  f"kernel ({best}) of {', '.join(kernels)}")
    record = {"device_label": label, "device": str(device), "device_name": device_name(device),
              "threads": timed.threads, "peak_flops": peak, "peak_tflops": peak / 1e12, "source": source}
    if not override:
        record["kernels_tflops"] = {name: flops / 1e12 for name, flops in kernels.items()}
    record["timing"] = timed.record()
    write_json(snakemake.output.peak, record)
    print(json.dumps(record))
