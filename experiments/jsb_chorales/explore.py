"""Quick recipe search for the JSB benchmark: a plain training loop over the real pianoroll_lstm model and
PianoRollPickleDataModule, many configs in one process, each reporting its best val frame NLL and the test
frame NLL at that epoch. The chosen recipe is then trained and reported through `musicrnn-train` (run.sh).

    python experiments/jsb_chorales/explore.py experiments/jsb_chorales/explore_configs.json [name ...]
"""

import json
import os
import sys
import time

import numpy as np
import torch

from musicrnn.data import PianoRollPickleDataModule
from musicrnn.training.models import pianoroll_lstm

torch.set_num_threads(2)
cfgs = json.load(open(sys.argv[1]))
if sys.argv[2:]:
    cfgs = [c for c in cfgs if c["name"] in sys.argv[2:]]
for cfg in cfgs:
    cfg = dict(cfg)
    name = cfg.pop("name")
    epochs = cfg.pop("epochs", 60)
    bs = cfg.pop("batch_size", 8)
    transpose = cfg.pop("transpose", 0)
    seed = cfg.pop("seed", 0)
    bias_init = cfg.pop("bias_init", False)
    clip = cfg.pop("clip", 1.0)
    sched = cfg.pop("sched", None)
    wd = cfg.get("weight_decay", 0.0)
    ema = cfg.pop("ema", None)
    torch.manual_seed(seed)
    np.random.seed(seed)
    dm = PianoRollPickleDataModule(os.environ["MUSICRNN_JSB_CHORALES"], batch_size=bs, transpose=transpose)
    dm.setup()
    m = pianoroll_lstm(**cfg)
    m.log = lambda *a, **k: None
    if bias_init:
        p = torch.as_tensor(dm.key_frequencies(), dtype=torch.float32).clamp(1e-3, 1 - 1e-3)
        with torch.no_grad():
            m.net.head.bias.copy_(torch.log(p / (1 - p)))
    opt = torch.optim.Adam(m.parameters(), lr=cfg.get("learning_rate", 1e-3), weight_decay=wd)
    sch = None
    if sched == "plateau":
        sch = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=cfg.get("lr_patience", 5))
    if sched == "cosine":
        sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    from torch.optim.swa_utils import AveragedModel, get_ema_avg_fn

    avg = AveragedModel(m, avg_fn=get_ema_avg_fn(ema), use_buffers=True) if ema else None

    def evaluate(split):
        mm = avg.module if avg is not None else m
        mm.log = lambda *a, **k: None
        mm.eval()
        tot = n = 0
        with torch.no_grad():
            for b in dm._loader(split, False):
                out = mm._step(b, "x")
                tot += out["frame_nll"].sum().item()
                n += out["frame_nll"].numel()
        mm.train()
        return tot / n

    best = (1e9, None, -1)
    t0 = time.time()
    hist = []
    for ep in range(epochs):
        for b in dm.train_dataloader():
            out = m._step(b, "x")
            opt.zero_grad()
            out["loss"].backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), clip)
            opt.step()
            if avg is not None:
                avg.update_parameters(m)
        v = evaluate("val")
        hist.append(round(v, 2))
        if sch is not None:
            sch.step(v) if sched == "plateau" else sch.step()
        if v < best[0]:
            best = (v, evaluate("test"), ep)
    print(
        f"{name}: best val {best[0]:.3f} test {best[1]:.3f} @ep {best[2]} / {epochs}  {time.time() - t0:.0f}s  hist {hist[:: max(1, epochs // 12)]}",
        flush=True,
    )
