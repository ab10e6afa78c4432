"""Carlini-Wagner L2 throughput on this machine, at the `default` and `paper` settings.

    python benchmarks/bench_cw.py [--images 20] [--iters 20]

Prints (1) attack iterations per second (one forward + backward per image and Adam step) at each
profile's batch size, (2) the resulting images/s if every binary-search step ran all `max_iter`
iterations (no early abort: a lower bound), and (3) a measured end-to-end run of `cw_l2` with the
default settings on the first test images against the default profile's undistilled network
(cached by notebook 04; a Glorot-initialised untrained network if the cache lacks it, which
aborts differently, so the number is then only indicative).
"""

from __future__ import annotations

import argparse
import time

import torch

from helpers import cw, distillation, models
from helpers.cache import cache_path
from helpers.profiles import budget


def _network(profile: str) -> tuple[torch.nn.Module, str]:
    cfg = budget(profile, "distill")
    s = distillation._settings(profile)
    key = {"settings": s, "seed": 0, "temperature": 1.0, "role": "undistilled"}
    if cache_path("distill-net", key).exists():
        return distillation.network(profile, "undistilled", 1.0, max(cfg.epochs)), "trained undistilled (cache)"
    return distillation.keras_init(models.MnistNet()).eval(), "untrained Glorot-initialised (no cache)"


def iterations_per_second(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, iters: int) -> float:
    start = time.perf_counter()
    cw.cw_l2(model, x, target, search_steps=1, max_iter=iters, abort_early=False, batch_size=len(x))
    return len(x) * iters / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20, help="images for the end-to-end default run")
    parser.add_argument("--iters", type=int, default=20, help="iterations for the throughput measurement")
    args = parser.parse_args()
    torch.manual_seed(0)
    model, what = _network("default")
    split = distillation.mnist_splits(budget("smoke", "distill").n_train, budget("smoke", "distill").n_val)["test"]
    print(f"device: {next(model.parameters()).device}, threads: {torch.get_num_threads()}, network: {what}")
    for profile in ("default", "paper"):
        cfg = budget(profile, "cw")
        n = min(cfg.batch_size, 200)
        x, y = split[0][:n], split[1][:n]
        rate = iterations_per_second(model, x, cw.random_targets(y, 10, 0), args.iters)
        per_image = cfg.search_steps * cfg.max_iter
        print(f"{profile}: batch {n} (profile batch {cfg.batch_size}): {rate:.0f} image-iterations/s; "
              f"{cfg.search_steps} x {cfg.max_iter} iterations per image -> >= {rate / per_image:.3g} images/s "
              f"without early abort")
    cfg = budget("default", "cw")
    x, y = split[0][:args.images], split[1][:args.images]
    start = time.perf_counter()
    res = cw.cw_l2(model, x, cw.random_targets(y, 10, 0), search_steps=cfg.search_steps, max_iter=cfg.max_iter,
                   batch_size=cfg.batch_size)
    seconds = time.perf_counter() - start
    print(f"default end-to-end: {args.images} images in {seconds:.1f} s = {args.images / seconds:.2f} images/s "
          f"(success {res['success'].float().mean():.0%}, mean L2 {res['l2'].nanmean():.2f})")


if __name__ == "__main__":
    main()
