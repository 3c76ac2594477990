"""PyTorch peer for segvol's benchmarks. Reads one JSON job from stdin:
{"suite": "conv", "threads": 2, "repeats": 10, "cases": [{"name", "x", "w", "padding"}]}
and prints one JSON line per case: {"case": name, "torch_ms": median ms}.
Same shapes and thread count as the segvol side; forward + both backward convolutions."""
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def conv_case(case, repeats):
    x = torch.rand(case["x"]) * 2 - 1
    w = (torch.rand(case["w"]) * 2 - 1).requires_grad_(True)
    x.requires_grad_(True)
    fn = F.conv2d if len(case["x"]) == 4 else F.conv3d
    with torch.no_grad():
        dy = torch.ones_like(fn(x, w, padding=case["padding"]))
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        y = fn(x, w, padding=case["padding"])
        y.backward(dy)
        elapsed = (time.perf_counter() - start) * 1000
        x.grad = None
        w.grad = None
        if i >= 2:
            times.append(elapsed)
    return statistics.median(times)


def main():
    job = json.load(sys.stdin)
    torch.set_num_threads(job["threads"])
    for case in job["cases"]:
        ms = conv_case(case, job["repeats"])
        print(json.dumps({"case": case["name"], "torch_ms": ms}), flush=True)


if __name__ == "__main__":
    main()
