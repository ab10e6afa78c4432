"""Carlini-Wagner attack speed: the previous L2 implementation against the current one in one
run, and the L0 attack's wall time per image.

    python benchmarks/bench_cw.py [--iters 100] [--batches 100 300 900] [--l0-images 10]

(1) L2 throughput in image-iterations per second (one forward and backward pass of one attack
    instance, with its bookkeeping) at each batch size, for the implementation of
    `helpers/cw.py` at `--old-commit` (read with `git show` into a temporary module, so no copy
    of old code lives in the tree) and for the current one, on the same instances: the first
    test images the network classifies correctly, with all nine wrong targets each. Early abort
    is off, so both run the same iterations; the speedup and the largest difference between
    their results are printed.
    Beside them, the floor this machine sets: its fp32 matmul throughput (measured in the same
    run) divided by the FLOPs of one forward and input-gradient backward pass of the network
    (counted by torch's FlopCounterMode), i.e. the image-iterations per second of an attack that
    did nothing but the network's own arithmetic at matmul speed.
(2) L0 wall time per image: the current attack's average case (one random wrong target per
    image) with the `default` and the `paper` profile's iteration cap per constant.
The network is the default profile's undistilled network from the cache (notebook 04), or an
untrained Glorot-initialised one when the cache lacks it (the output says which: L0 times of an
untrained network mean little).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from helpers import cw, cw_study, data, distillation, distillation_study, models
from helpers.config import REPO_ROOT
from helpers.profiles import get
from helpers.training import predict

# the last commit with the previous helpers/cw.py (early abort on the batch's summed loss, torch's Adam)
OLD_COMMIT = "298b159f54079caf5bdeda44f67157c32ce5e01e"


def old_cw(commit: str):
    """`helpers/cw.py` as of `commit`, imported as a module of the helpers package."""
    source = subprocess.run(["git", "show", f"{commit}:helpers/cw.py"], cwd=REPO_ROOT, capture_output=True,
                            text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "cw_old.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("helpers._cw_old", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def network() -> tuple[torch.nn.Module, str]:
    epochs = max(get("default").distill.epochs)
    if distillation_study.is_trained("default", "undistilled", 1.0, epochs):
        return distillation_study.network("default", "undistilled", 1.0, epochs), "trained undistilled (cache)"
    return distillation.keras_init(models.MnistNet()).eval(), "UNTRAINED Glorot-initialised (no cache)"


def instances(model: torch.nn.Module, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n instances: correctly classified test images, each with its nine wrong targets in turn."""
    cfg = get("default").distill
    x, y = data.mnist_splits(cfg.n_train, cfg.n_val, 0, cfg.n_test)["test"]
    keep = torch.nonzero(predict(model, x).argmax(1) == y).flatten()[:-(-n // 9)]
    x, y = x[keep].repeat_interleave(9, 0)[:n], y[keep].repeat_interleave(9)[:n]
    offset = torch.arange(len(y)) % 9 + 1
    return x, y, (y + offset) % 10


def timed(fn, *args, **kwargs) -> tuple[dict, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def matmul_flops(n: int = 2048, repeats: int = 5) -> float:
    """The machine's fp32 matmul throughput (FLOP/s, best of `repeats` n x n products)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    return 2 * n ** 3 / min(timed(torch.mm, a, b)[1] for _ in range(repeats))


def flops_per_iteration(model: torch.nn.Module, batch: int = 100) -> float:
    """FLOPs of one attack iteration's network work per image: a forward pass and the backward
    pass to the input (the weights are frozen while attacked, as in `cw.cw_l2`)."""
    x = torch.rand(batch, 1, 28, 28, requires_grad=True)
    with models.frozen(model), FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    return counter.get_total_flops() / batch


def l2_throughput(model: torch.nn.Module, old, batches: list[int], iters: int, repeats: int = 2) -> None:
    per_image, machine = flops_per_iteration(model), matmul_flops()
    floor = machine / per_image
    print(f"L2, {iters} iterations per instance, early abort off; image-iterations/s, best of {repeats} "
          "interleaved runs after a warm-up. Floor: fp32 matmul at "
          f"{machine / 1e9:.0f} GFLOP/s over {per_image / 1e6:.2f} MFLOP per image-iteration = {floor:.0f}/s")
    for batch in batches:
        x, _, target = instances(model, batch)
        common = {"abort_early": False, "batch_size": batch, "c_init": 1.0}
        runs = {"old": partial(old.cw_l2, model, x, target, search_steps=1, **common),
                "new": partial(cw.cw_l2, model, x, target, binary_search_steps=1, **common)}
        best, result = {}, {}
        for run in runs.values():
            run(max_iter=1)  # warm-up: the first call of a shape builds oneDNN's kernels
        for _ in range(repeats):
            for name, run in runs.items():
                result[name], seconds = timed(run, max_iter=iters)
                best[name] = min(best.get(name, seconds), seconds)
        same = (result["old"]["success"] == result["new"]["success"]).float().mean().item()
        diff = (result["old"]["l2"] - result["new"]["l2"]).abs().nan_to_num().max().item()
        rate = {name: batch * iters / seconds for name, seconds in best.items()}
        print(f"  batch {batch}: old {rate['old']:.0f}, new {rate['new']:.0f} ({rate['new'] / rate['old']:.2f}x; "
              f"{rate['new'] / floor:.0%} of the floor); same success on {same:.0%} of instances, "
              f"max |L2 difference| {diff:.1e}")


def l0_per_image(model: torch.nn.Module, n: int) -> None:
    x, y, _ = instances(model, 9 * n)
    x, y = x[::9], y[::9]
    target = cw_study.average_targets(y, 0)
    for profile in ("default", "paper"):
        cap = get(profile).cw.l0_max_iter
        res, seconds = timed(cw.cw_l0, model, x, target, max_iter=cap, batch_size=get(profile).cw.batch_size)
        print(f"L0, {profile} cap {cap} iterations per constant, {n} images (average case): {seconds / n:.1f} s per "
              f"image; success {res['success'].float().mean():.0%}, mean {res['l0'].nanmean():.1f} pixels, "
              f"{res['iterations'].float().mean():.0f} model evaluations and {res['rounds'].float().mean():.0f} "
              "rounds per image")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=100, help="L2 iterations per instance in the throughput runs")
    parser.add_argument("--batches", type=int, nargs="+", default=[100, 300, 900], help="L2 batch sizes")
    parser.add_argument("--l0-images", type=int, default=10, help="images of the L0 timing (0: skip it)")
    parser.add_argument("--old-commit", default=OLD_COMMIT, help="commit holding the previous helpers/cw.py")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model, what = network()
    print(f"device: {next(model.parameters()).device}, threads: {torch.get_num_threads()}, network: {what}, "
          f"python {sys.version.split()[0]}, torch {torch.__version__}")
    l2_throughput(model, old_cw(args.old_commit), args.batches, args.iters)
    if args.l0_images:
        l0_per_image(model, args.l0_images)


if __name__ == "__main__":
    main()
