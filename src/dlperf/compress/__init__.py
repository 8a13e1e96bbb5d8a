"""Model compression: pruning, post-training INT8 quantization, weight sharing and distillation, with the
measurements (size, accuracy, latency) that compare them."""
