"""PyTorch peer for segvol's benchmarks. Reads one JSON job from stdin:
{"suite": "conv" | "pyramid" | "rnn" | "gpu" | "convnet" | "brats" | "consistent", "threads": 2, "repeats": 10, "cases": [...]}
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


# Gonda, Wei and Pfister's consistent ConvLSTM, written here as segvol builds it
# (lib/models/consistent: network.ts, layer.ts, resnet.ts, matching.ts) so the two sides run the
# same training step: the same layers, shapes, initialisers and parameter count.


class Bottleneck(torch.nn.Module):
    """torchvision's ResNet bottleneck (v1.5: the stride on the 3x3 convolution)."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        nn = torch.nn
        out = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.downsample = nn.Sequential(nn.Conv2d(cin, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)) if stride != 1 or cin != out else None

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class Resnet50Features(torch.nn.Module):
    """ResNet-50 without pooling and fc, torchvision's layout and names (torchvision itself is not
    needed); forward gives the five block outputs, shallowest first: the stem's ReLU (1/2, 64),
    layer1 .. layer4 (1/4 .. 1/32; 256, 512, 1024, 2048)."""

    def __init__(self, in_channels):
        super().__init__()
        nn = torch.nn
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for index, (blocks, planes, stride) in enumerate([(3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2)]):
            layer = []
            for b in range(blocks):
                layer.append(Bottleneck(cin, planes, stride if b == 0 else 1))
                cin = planes * 4
            setattr(self, f"layer{index + 1}", nn.Sequential(*layer))

    def forward(self, x):
        stem = F.relu(self.bn1(self.conv1(x)))
        features = [stem]
        y = F.max_pool2d(stem, 3, stride=2, padding=1)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            y = layer(y)
            features.append(y)
        return features


class CConvLstm(torch.nn.Module):
    """The CConvLSTM (STC variant: both directions and the reference skip). Each direction's gates
    (i, f, g, o) are one convolution of [x_t | h_spatial | h_temporal], its input part done for all
    frames at once; c = f (c_spatial + c_temporal) + i tanh(g), h = o tanh(c). The output is a
    convolution of [h_fwd | h_bwd | h_fwd of the reference frame]."""

    def __init__(self, cin, hidden, kernel):
        super().__init__()
        bound = 1 / math.sqrt(hidden * kernel * kernel)

        def convolution(cout, cin):
            # segvol's names: fwd.weight, fwd.bias, ... (its state dict loads unchanged)
            conv = torch.nn.Module()
            conv.weight = torch.nn.Parameter(torch.empty(cout, cin, kernel, kernel).uniform_(-bound, bound))
            conv.bias = torch.nn.Parameter(torch.empty(cout).uniform_(-bound, bound))
            return conv
        self.cin, self.hidden, self.pad = cin, hidden, kernel // 2
        self.fwd = convolution(4 * hidden, cin + 2 * hidden)
        self.bwd = convolution(4 * hidden, cin + 2 * hidden)
        self.out = convolution(hidden, 3 * hidden)

    def direction(self, x, gates, spatial, reverse):
        frames = x.shape[0]
        gates_x = F.conv2d(x, gates.weight[:, :self.cin], gates.bias, padding=self.pad)
        w_h = gates.weight[:, self.cin:]
        zeros = x.new_zeros(1, self.hidden, *x.shape[2:])
        hs, cs = [None] * frames, [None] * frames
        h_prev = c_prev = None
        for step in range(frames):
            t = frames - 1 - step if reverse else step
            h_spatial = spatial[0][t:t + 1] if spatial is not None else zeros
            c_spatial = spatial[1][t:t + 1] if spatial is not None else None
            gates = gates_x[t:t + 1] + F.conv2d(torch.cat([h_spatial, h_prev if h_prev is not None else zeros], 1), w_h, padding=self.pad)
            i, f, g, o = gates.chunk(4, 1)
            cell = torch.sigmoid(i) * torch.tanh(g)
            previous = [c for c in (c_spatial, c_prev) if c is not None]
            if previous:
                cell = torch.sigmoid(f) * sum(previous) + cell
            hs[t] = torch.sigmoid(o) * torch.tanh(cell)
            cs[t] = cell
            h_prev, c_prev = hs[t], cell
        return torch.cat(hs, 0), torch.cat(cs, 0)

    def forward(self, x, spatial, reference=0):
        """x (T, C, h, w); spatial: the previous object's ((h, c) forward, (h, c) backward) or None."""
        fh, fc = self.direction(x, self.fwd, spatial[0] if spatial else None, False)
        bh, bc = self.direction(x, self.bwd, spatial[1] if spatial else None, True)
        joined = torch.cat([fh, bh, fh[reference:reference + 1].expand_as(fh)], 1)
        return F.conv2d(joined, self.out.weight, self.out.bias, padding=self.pad), ((fh, fc), (bh, bc))


class ConsistentConvLstmNet(torch.nn.Module):
    """segvol's consistentConvLstm: ResNet-50 over the T frames (one batch in training), a 1x1
    projection (with bias) of each of its five features to the level's hidden channels, and per
    object, deepest level first, a CConvLSTM over [upsampled previous level | projected feature |
    average-pooled previous-frame mask]; then a 2x bilinear upsampling, a 1x1 head and a sigmoid.
    Objects run in sequence, each CConvLSTM continuing from the previous object's states."""

    def __init__(self, in_channels=1, hidden=(64, 64, 32, 32, 16), kernel=3):
        super().__init__()
        nn = torch.nn
        self.encoder = Resnet50Features(in_channels)
        features = [64, 256, 512, 1024, 2048]
        self.proj = nn.ModuleList(nn.Conv2d(features[4 - level], hidden[level], 1) for level in range(5))
        self.cconv = nn.ModuleList(CConvLstm((hidden[level - 1] if level else 0) + hidden[level] + 1, hidden[level], kernel) for level in range(5))
        self.head = nn.Conv2d(hidden[4], 1, 1)
        # segvol's initialisers: He (normal, fan in) for ResNet-50 and the projections, Glorot
        # (uniform) for the head, zero biases; the CConvLSTMs' uniform is set above.
        for m in [*self.encoder.modules(), *self.proj]:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, frames, masks):
        """frames (1, C, T, H, W), masks (M, 1, T, H, W): each object's previous-frame masks; out (M, 1, T, H, W)."""
        _, c, T, H, W = frames.shape
        images = frames.permute(0, 2, 1, 3, 4).reshape(T, c, H, W)
        encoded = self.encoder(images)
        features = [self.proj[level](encoded[4 - level]) for level in range(5)]
        object_masks = masks.permute(0, 2, 1, 3, 4)  # (M, T, 1, H, W)
        spatial = [None] * 5
        outputs = []
        for o in range(masks.shape[0]):
            previous = None
            for level in range(5):
                f = 2 ** (5 - level)
                parts = [features[level], F.avg_pool2d(object_masks[o], f, stride=f)]
                if previous is not None:
                    parts.insert(0, F.interpolate(previous, scale_factor=2, mode="bilinear", align_corners=False))
                previous, spatial[level] = self.cconv[level](torch.cat(parts, 1), spatial[level])
            up = F.interpolate(previous, scale_factor=2, mode="bilinear", align_corners=False)
            outputs.append(torch.sigmoid(self.head(up)))
        return torch.stack(outputs, 0).permute(0, 2, 1, 3, 4)


def matched_soft_iou(masks, truth):
    """segvol's matchedSoftIoU: soft IoU losses 1 - sum(m g) / sum(m + g - m g) of every prediction
    (rows) against every true mask (cols), in float64 as segvol computes them; the pairs chosen by
    scipy's linear_sum_assignment on that cost matrix; (matched costs + unmatched predictions'
    mean + 1 per unmatched object) / max(M, G)."""
    from scipy.optimize import linear_sum_assignment
    m, g = masks.shape[0], truth.shape[0]
    p = masks.reshape(m, -1).double()
    t = truth.reshape(g, -1).double()
    inter = p @ t.T
    union = p.sum(1, keepdim=True) + t.sum(1) - inter
    costs = torch.where(union > 0, 1 - inter / union.clamp_min(1e-300), torch.zeros_like(inter))
    rows, cols = linear_sum_assignment(costs.detach().numpy())
    total = costs[rows, cols].sum() + (g - len(rows))
    unmatched = [i for i in range(m) if i not in set(rows.tolist())]
    if unmatched:
        total = total + p[unmatched].mean(1).sum()
    return total / max(m, g, 1)


def consistent_case(case, repeats):
    """A training step of the consistent ConvLSTM at segvol's defaults: forward in training mode on
    frames filled with sin(i * 0.01) and the objects' masks (horizontal stripes, also the previous-
    frame masks), matched soft IoU, backward, Adam. Returns ms, peak RSS MiB and the parameter count."""
    import resource
    torch.manual_seed(0)
    T, H, W = case["window"]
    objects = case["objects"]
    net = ConsistentConvLstmNet(case["inChannels"], tuple(case["hidden"]), case["kernel"])
    net.train()
    parameters = sum(p.numel() for p in net.parameters())
    frames = torch.sin(torch.arange(T * H * W, dtype=torch.float64) * 0.01).float().reshape(1, 1, T, H, W)
    rows = torch.arange(H).reshape(1, 1, 1, H, 1) // (H // objects)
    masks = (rows == torch.arange(objects).reshape(objects, 1, 1, 1, 1)).float().expand(objects, 1, T, H, W).contiguous()
    optimizer = torch.optim.Adam(net.parameters(), lr=case["lr"])
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        optimizer.zero_grad()
        with autocast():
            loss = matched_soft_iou(net(frames, masks), masks)
        loss.backward()
        optimizer.step()
        if i >= 2:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, parameters


def main():
    job = json.load(sys.stdin)
    if job["suite"] == "brats":
        torch.set_num_threads(job["threads"])
        ms, rss = brats_case(job["cases"][0], job["repeats"])
        print(json.dumps({"case": "brats", "torch_ms": ms, "peak_rss_mib": rss}), flush=True)
        return
    if job["suite"] == "consistent":
        torch.set_num_threads(job["threads"])
        for case in job["cases"]:
            ms, rss, parameters = consistent_case(case, job["repeats"])
            print(json.dumps({"case": case["name"], "torch_ms": ms, "peak_rss_mib": rss, "torch_parameters": parameters}), flush=True)
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
