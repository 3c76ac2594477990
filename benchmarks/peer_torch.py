"""PyTorch peer for segvol's benchmarks. Reads one JSON job from stdin:
{"suite": "conv" | "pyramid" | "rnn" | "gpu", "threads": 2, "repeats": 10, "cases": [...]}
("gpu" also takes "device": "cuda" and "tf32": bool, and cases of kind layer,
train or inference; see gpu_case)
and prints one JSON line per case: {"case": name, "torch_ms": median ms, "peak_rss_mib": the
process's peak RSS so far}.
Same shapes and thread count as the segvol side; forward + both backward convolutions.
With SEGVOL_BENCH_PRECISION=bf16 in the environment (npm run bench -- all --precision bf16),
the training steps run their forward and loss under torch.autocast("cpu", dtype=torch.bfloat16),
PyTorch's mixed precision, against segvol's bf16 convolutions."""
import contextlib
import json
import math
import statistics
import sys
import time

import os

import torch
import torch.nn.functional as F

PRECISION = os.environ.get("SEGVOL_BENCH_PRECISION", "fp32")


def autocast():
    """The forward and loss in bf16 mixed precision when the run asks for it."""
    if PRECISION == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures"))
from pyramid_reference import PyramidNet, clstm_weights, pyramid_lstm  # noqa: E402


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


def pyramid_case(case, repeats):
    """Forward + backward of one PyraMiD-LSTM layer (the independent implementation)."""
    x = (torch.rand(case["x"]) * 2 - 1).requires_grad_(True)
    g = torch.Generator().manual_seed(0)
    weights = [[w.requires_grad_(True) for w in clstm_weights(case["x"][1], case["hidden"], case["kernel"], g)]
               for _ in range(6)]
    with torch.no_grad():
        dy = torch.ones_like(pyramid_lstm(x, weights))
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        y = pyramid_lstm(x, weights)
        y.backward(dy)
        elapsed = (time.perf_counter() - start) * 1000
        x.grad = None
        for ws in weights:
            for w in ws:
                w.grad = None
        if i >= 2:
            times.append(elapsed)
    return statistics.median(times)


def timed(fn, repeats, device):
    """Median ms of fn after two warm-ups, the device drained around each run."""
    times = []
    for i in range(repeats + 2):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def gpu_case(case, repeats, device, tf32):
    """The GPU cases of `npm run bench -- pyramid --gpu`, eager PyTorch with cuDNN."""
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = False  # segvol uses cuDNN's heuristics, not exhaustive search
    if case["kind"] == "layer":
        x = (torch.rand(case["x"], device=device) * 2 - 1).requires_grad_(True)
        g = torch.Generator().manual_seed(0)
        weights = [[w.to(device).requires_grad_(True) for w in clstm_weights(case["x"][1], case["hidden"], case["kernel"], g)]
                   for _ in range(6)]
        dy = torch.ones((case["x"][0], case["hidden"], *case["x"][2:]), device=device)

        def step():
            pyramid_lstm(x, weights).backward(dy)
            x.grad = None
            for ws in weights:
                for w in ws:
                    w.grad = None
        return timed(step, repeats, device)
    net = PyramidNet(1, 2, hidden=tuple(case["hidden"]), fc=tuple(case["fc"]), kernel=case["kernel"], seed=1).to(device)
    x = torch.rand((1, 1, *case["size"]), device=device) * 2 - 1
    if case["kind"] == "train":
        target = torch.nn.functional.one_hot((torch.rand(case["size"], device=device) < 0.3).long(), 2)
        target = target.permute(3, 0, 1, 2).unsqueeze(0).float()
        optimizer = torch.optim.RMSprop(net.parameters(), lr=1e-4, momentum=0.9)

        def train_step():
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = ((net(x) - target) ** 2).sum() / target[0, 0].numel()
            loss.backward()
            optimizer.step()
        return timed(train_step, repeats, device)

    def infer():
        with torch.no_grad():
            net(x)
    return timed(infer, repeats, device)


def conv_lstm(x, weights, hidden, kernel):
    """The usual PyTorch ConvLSTM: per slice one convolution of [x, h], gates i, f, g, o."""
    n, _, depth, hh, ww = x.shape
    h = x.new_zeros(n, hidden, hh, ww)
    c = x.new_zeros(n, hidden, hh, ww)
    outs = []
    for z in range(depth):
        pre = F.conv2d(torch.cat([x[:, :, z], h], dim=1), weights[0], weights[1], padding=kernel // 2)
        i, f, g, o = pre.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, dim=2)


def rnn_case(case, repeats):
    """Forward + backward (input and every weight) of torch.nn.LSTM / GRU, or of a ConvLSTM over slices."""
    torch.manual_seed(0)
    if case["kind"] == "convLstm":
        x = (torch.rand(case["x"]) * 2 - 1).requires_grad_(True)
        c, o, k = case["x"][1], case["hidden"], case["kernel"]
        weights = [((torch.rand(4 * o, c + o, k, k) * 2 - 1) * 0.1).requires_grad_(True), torch.zeros(4 * o, requires_grad=True)]
        forward = lambda: conv_lstm(x, weights, o, k)  # noqa: E731
        params = weights
    else:
        module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[case["kind"]](case["inputSize"], case["hiddenSize"], num_layers=case["numLayers"])
        x = (torch.rand(case["x"]) * 2 - 1).requires_grad_(True)
        forward = lambda: module(x)[0]  # noqa: E731
        params = list(module.parameters())
    with torch.no_grad():
        dy = torch.ones_like(forward())
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        y = forward()
        y.backward(dy)
        elapsed = (time.perf_counter() - start) * 1000
        x.grad = None
        for p in params:
            p.grad = None
        if i >= 2:
            times.append(elapsed)
    return statistics.median(times)


def convnet_case(case, repeats):
    """A training step (forward, cross-entropy, backward, SGD 0.01 with momentum 0.9) of a dense
    2D-3D ConvNet given as segvol's graph nodes: dilated convolutions and stride-1 max-pooling."""
    import resource
    torch.manual_seed(0)
    channels = dict(case["inputs"])
    params = []
    weights = {}
    for node in case["nodes"]:
        if "layer" in node:
            layer = node["layer"]
            cin = channels[node["input"]]
            if layer["type"] == "conv":
                o = layer["options"]
                w = (torch.randn(o["out"], cin, *o["kernel"]) * (2.0 / (cin * math.prod(o["kernel"]))) ** 0.5).requires_grad_(True)
                b = torch.zeros(o["out"], requires_grad=True) if o.get("bias", True) else None
                weights[node["name"]] = (w, b)
                params += [w] + ([b] if b is not None else [])
                channels[node["name"]] = o["out"]
            else:
                channels[node["name"]] = cin
        else:
            channels[node["name"]] = channels[node["inputs"][0]]
    inputs = {name: torch.randn(1, c, *case["inSize"]) for name, c in case["inputs"].items()}
    labels = torch.randint(0, 2, (1, *case["outSize"]))
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9)

    def forward():
        values = dict(inputs)
        for node in case["nodes"]:
            if "layer" not in node:
                values[node["name"]] = sum(values[i] for i in node["inputs"])
                continue
            layer, x = node["layer"], values[node["input"]]
            o = layer.get("options", {})
            if layer["type"] == "conv":
                w, b = weights[node["name"]]
                y = F.conv3d(x, w, b, dilation=tuple(o.get("dilation", (1, 1, 1))))
            elif layer["type"] == "maxFilter":
                y = F.max_pool3d(x, tuple(o["kernel"]), stride=1, dilation=tuple(o.get("dilation", (1, 1, 1))))
            elif layer["type"] == "relu":
                y = F.relu(x)
            elif layer["type"] == "tanh":
                y = torch.tanh(x)
            elif layer["type"] == "dropout":
                y = F.dropout(x, o["p"], training=True)
            elif layer["type"] == "softmax":
                y = F.log_softmax(x, dim=1)  # the loss takes log-probabilities
            else:
                raise ValueError(layer["type"])
            values[node["name"]] = y
        return values[case["output"]]

    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        optimizer.zero_grad()
        with autocast():
            loss = F.nll_loss(forward(), labels)
        loss.backward()
        optimizer.step()
        if i >= 2:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def brats_case(case, repeats):
    """A training step of Tseng et al.'s network (the same reference the goldens check):
    forward, weighted cross-entropy on log-probabilities, backward, Adam."""
    import os
    import resource
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "test", "fixtures"))
    from cross_modality_reference import CrossModalityConvLstmNet
    torch.manual_seed(0)
    plane = case["plane"]
    net = CrossModalityConvLstmNet(channels=case["channels"])
    net.train()
    x = torch.randn(3, 4, 3, plane, plane)
    labels = torch.randint(0, 5, (3, 3, plane, plane))
    weights = torch.tensor([0.1, 2, 1, 3, 1.5])
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        optimizer.zero_grad()
        with autocast():
            loss = F.nll_loss(F.log_softmax(net(x), dim=1), labels, weight=weights)
        loss.backward()
        optimizer.step()
        if i >= 2:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    job = json.load(sys.stdin)
    if job["suite"] == "brats":
        torch.set_num_threads(job["threads"])
        ms, rss = brats_case(job["cases"][0], job["repeats"])
        print(json.dumps({"case": "brats", "torch_ms": ms, "peak_rss_mib": rss}), flush=True)
        return
    if job["suite"] == "convnet":
        torch.set_num_threads(job["threads"])
        for case in job["cases"]:
            ms, rss = convnet_case(case, job["repeats"])
            print(json.dumps({"case": case["name"], "torch_ms": ms, "peak_rss_mib": rss}), flush=True)
        return
    torch.set_num_threads(job["threads"])
    if job["suite"] == "gpu":
        # The same network cases run on the CPU too (npm run bench -- all): device "cpu".
        if job["device"] == "cuda" and not torch.cuda.is_available():
            sys.exit("PyTorch here has no CUDA device")
        run = lambda case, repeats: gpu_case(case, repeats, job["device"], job["tf32"])  # noqa: E731
    else:
        run = {"pyramid": pyramid_case, "rnn": rnn_case}.get(job["suite"], conv_case)
    import resource
    for case in job["cases"]:
        ms = run(case, job["repeats"])
        # The process's peak so far: a case's own when it is the job's only case.
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"case": case["name"], "torch_ms": ms, "peak_rss_mib": rss}), flush=True)


if __name__ == "__main__":
    main()
