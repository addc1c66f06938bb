"""The PyTorch reference side of bench/time_to_accuracy.py: the reference's training recipe on CPU.

Run by a python with torch, einops and pydantic (never TensorFlow):

  python bench/tta_reference_driver.py '{"reference_dir": DIR, "data_dir": EXPORT, "recipe": {...}, ...}'

The reference's `pretrain.py` cannot run here (it needs CUDA, hydra, wandb and the CUDA `adam-atan2`
package), so this driver imports the pieces it is built from at run time — the model
(`models/recursive_reasoning/trm.py`), its loss head (`models/losses.py` ACTLossHead), the sparse
puzzle-embedding optimizer (`models/sparse_embedding.py`), the EMA helper (`models/ema.py`) and the data
loader (`puzzle_dataset.py`, reading the NumPy export of our TFDS dataset) — and runs the loop
`pretrain.py` runs: one `train_batch` per batch (carry created once from the first batch, halted slots
refilled by the ACT wrapper, loss / global batch, then for each optimizer lr = warm-up schedule and one
step), an EMA update after every step, and every `eval_every` steps an evaluation of a deep copy holding
the EMA weights over the whole test split, each batch run until every example has halted (all
`halt_max_steps` steps in eval mode), with the loss head's metrics of the last step summed and divided by
their count, as its `evaluate` does.

AdamATan2 is written below from its definition (the CUDA package is not installable on CPU).

Protocol: JSON lines on stdout — one {"event": "recipe", ...} with what was actually instantiated; before
each evaluation one {"event": "train", "step", "accuracy", "exact_accuracy", "lm_loss"} (training means
since the previous one); one {"event": "eval", "step", "time", "exact_accuracy", "accuracy", "eval_seconds"} per evaluation, and a final
{"event": "done"}. `time` is time.time(), so the parent can subtract the time it started this process.
"""

from __future__ import annotations

import json
import math
import sys
import time
import types


class AdamATan2:
    """AdamATan2 (the `adam-atan2` package's update) for torch parameters, from its definition.

    Per parameter p with gradient g, at the 1-based step t of this optimizer:
      p <- p * (1 - lr * wd)                       decoupled decay first
      m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
      p <- p - lr / (1 - b1^t) * atan2(m, sqrt(v) / sqrt(1 - b2^t))
    atan2 replaces Adam's m / (sqrt(v) + eps): bounded, scale-invariant, no epsilon. Parameters without
    a gradient are skipped (their step count does not advance). Duck-types the parts of
    torch.optim.Optimizer the loop uses (param_groups with "lr", step, zero_grad).
    """

    def __init__(self, torch, params, lr: float, weight_decay: float, betas: tuple[float, float]):
        self.torch = torch
        self.param_groups = [
            {
                "params": [p for p in params if p.requires_grad],
                "lr": lr,
                "weight_decay": weight_decay,
            }
        ]
        self.betas = betas
        self.state: dict = {}

    def step(self) -> None:
        torch = self.torch
        b1, b2 = self.betas
        with torch.no_grad():
            for group in self.param_groups:
                lr, wd = group["lr"], group["weight_decay"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    st = self.state.setdefault(
                        p, {"t": 0, "m": torch.zeros_like(p), "v": torch.zeros_like(p)}
                    )
                    st["t"] += 1
                    t = st["t"]
                    p.mul_(1.0 - lr * wd)
                    st["m"].lerp_(p.grad, 1.0 - b1)
                    st["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1.0 - b2)
                    denom = st["v"].sqrt() / math.sqrt(1.0 - b2**t)
                    p.add_(torch.atan2(st["m"], denom), alpha=-lr / (1.0 - b1**t))

    def zero_grad(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None


def lr_at(step: int, base_lr: float, warmup: int, total: int, min_ratio: float) -> float:
    """The reference's schedule: linear warm-up from 0, then cosine from base to base * min_ratio
    (constant when min_ratio = 1). `step` is 1-based (the loop increments it before the update)."""
    if step < warmup:
        return base_lr * step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return base_lr * (
        min_ratio + max(0.0, (1 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))
    )


def emit(record: dict) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def import_reference(reference_dir: str):
    """Imports the reference modules from `reference_dir`. `puzzle_dataset.py` imports `argdantic` at
    module level without using it; an empty stand-in module is registered when it is not installed."""
    sys.path.insert(0, reference_dir)
    try:
        import argdantic  # noqa: F401
    except ImportError:
        stub = types.ModuleType("argdantic")
        stub.ArgParser = None
        sys.modules["argdantic"] = stub
    import puzzle_dataset
    from models import ema, losses, sparse_embedding
    from models.recursive_reasoning import trm

    return types.SimpleNamespace(
        trm=trm, losses=losses, sparse=sparse_embedding, ema=ema, data=puzzle_dataset
    )


def build(ref, torch, cfg: dict):
    """Model + loss head, the two optimizers and the EMA helper, as pretrain.py's create_model does."""
    r = cfg["recipe"]
    torch.random.manual_seed(cfg["seed"])
    model = ref.trm.TinyRecursiveReasoningModel_ACTV1(dict(r["model"], causal=False))
    model = ref.losses.ACTLossHead(model, loss_type=r["loss_type"])
    if cfg.get("compile"):
        model = torch.compile(model)
    inner = model._orig_mod if cfg.get("compile") else model
    optimizers = [
        ref.sparse.CastedSparseEmbeddingSignSGD_Distributed(
            inner.model.puzzle_emb.buffers(),
            lr=0,
            weight_decay=r["puzzle_emb_weight_decay"],
            world_size=1,
        ),
        AdamATan2(torch, model.parameters(), 0.0, r["weight_decay"], (r["beta1"], r["beta2"])),
    ]
    lrs = [r["puzzle_emb_lr"], r["lr"]]
    ema = ref.ema.EMAHelper(mu=r["ema_rate"]) if r["ema"] else None
    if ema is not None:
        ema.register(model)
    return model, optimizers, lrs, ema


def evaluate(ref, torch, model, ema, test_ds) -> dict:
    """Exact and cell accuracy of the EMA copy over the test split (pretrain.py's `evaluate`)."""
    t0 = time.time()
    net = ema.ema_copy(model) if ema is not None else model
    net.eval()
    sums: dict = {}
    with torch.inference_mode():
        for _set, batch, _n in test_ds:
            carry = net.initial_carry(batch)
            while True:
                carry, _loss, metrics, _preds, done = net(carry=carry, batch=batch, return_keys=[])
                if done:
                    break
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + float(v)
    net.train()
    count = max(sums.pop("count", 0.0), 1.0)
    return {
        "exact_accuracy": sums["exact_accuracy"] / count,
        "accuracy": sums["accuracy"] / count,
        "q_halt_accuracy": sums["q_halt_accuracy"] / count,
        "count": int(count),
        "eval_seconds": time.time() - t0,
    }


def datasets(ref, cfg: dict):
    """The reference's loader over the export: training batches (its group sampler, drop-last) and the
    whole test split in order, padded to the eval batch."""

    def make(split, batch, test_mode):
        conf = ref.data.PuzzleDatasetConfig(
            seed=cfg["seed"],
            dataset_paths=[cfg["data_dir"]],
            global_batch_size=batch,
            test_set_mode=test_mode,
            epochs_per_iter=1,
            rank=0,
            num_replicas=1,
        )
        return ref.data.PuzzleDataset(conf, split=split)

    r = cfg["recipe"]
    return make("train", r["global_batch_size"], False), make("test", cfg["eval_batch"], True)


def train_step(state: dict, batch: dict, cfg: dict) -> None:
    """One `train_batch` of pretrain.py (single process); adds the loss head's metric sums (examples
    that halted this step) to state["train_sums"]."""
    r = cfg["recipe"]
    state["step"] += 1
    model = state["model"]
    if state["carry"] is None:
        state["carry"] = model.initial_carry(batch)
    state["carry"], loss, metrics, _, _ = model(carry=state["carry"], batch=batch, return_keys=[])
    ((1 / r["global_batch_size"]) * loss).backward()
    sums = state["train_sums"]
    for k in ("count", "accuracy", "exact_accuracy", "lm_loss"):
        sums[k] = sums.get(k, 0.0) + float(metrics[k])
    sums["batches"] = sums.get("batches", 0) + 1
    for opt, base_lr in zip(state["optimizers"], state["lrs"]):
        lr = lr_at(state["step"], base_lr, r["lr_warmup_steps"], cfg["steps"], r["lr_min_ratio"])
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        opt.zero_grad()
    if state["ema"] is not None:
        state["ema"].update(model)


def train_record(state: dict) -> dict:
    """Mean training metrics since the last record (cell and exact accuracy of the examples that halted,
    lm loss per example, as pretrain.py logs them), then resets the sums."""
    s, state["train_sums"] = state["train_sums"], {}
    count = max(s.get("count", 0.0), 1.0)
    return {
        "event": "train",
        "step": state["step"],
        "accuracy": s.get("accuracy", 0.0) / count,
        "exact_accuracy": s.get("exact_accuracy", 0.0) / count,
        "lm_loss": s.get("lm_loss", 0.0) / max(1, s.get("batches", 0) * state["batch"]),
    }


def main(argv: list[str]) -> None:
    cfg = json.loads(argv[1])
    ref = import_reference(cfg["reference_dir"])
    import torch

    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    model, optimizers, lrs, ema = build(ref, torch, cfg)
    train_ds, test_ds = datasets(ref, cfg)
    inner = model._orig_mod if cfg.get("compile") else model
    emit(
        {
            "event": "recipe",
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "params": sum(p.numel() for p in model.parameters()),
            "model": inner.model.config.model_dump(),
            "optimizer_groups": [
                {"class": type(o).__name__, "weight_decay": o.param_groups[0]["weight_decay"]}
                for o in optimizers
            ],
            "base_lrs": lrs,
            "ema_rate": ema.mu if ema is not None else None,
        }
    )
    state = {
        "step": 0,
        "model": model,
        "optimizers": optimizers,
        "lrs": lrs,
        "ema": ema,
        "carry": None,
        "train_sums": {},
        "batch": cfg["recipe"]["global_batch_size"],
    }
    model.train()
    while state["step"] < cfg["steps"]:
        for _set, batch, _n in train_ds:  # one epoch per pass (a new group order each pass)
            train_step(state, batch, cfg)
            if state["step"] % cfg["eval_every"] == 0 or state["step"] == cfg["steps"]:
                emit(train_record(state))
                res = evaluate(ref, torch, model, ema, test_ds)
                emit({"event": "eval", "step": state["step"], "time": time.time(), **res})
                if cfg.get("stop_at") is not None and res["exact_accuracy"] >= cfg["stop_at"]:
                    state["step"] = cfg["steps"]
            if state["step"] >= cfg["steps"]:
                break
    emit({"event": "done", "step": state["step"], "time": time.time()})


if __name__ == "__main__":
    main(sys.argv)
