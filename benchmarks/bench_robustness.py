"""Cost of notebook 03 (FGSM / PGD robustness study) under a profile, from short measurements.

    python benchmarks/bench_robustness.py [--profile default] [--images 500]

Times one LeNet epoch on the whole training set and one LeNet SGD step on an ipc-sized set
(after a first epoch that pays for compilation), and FGSM / PGD on a LeNet and a ConvNet on
`--images` test images (scaled linearly to the profile's counts); then prints the notebook's
estimated wall time, assuming notebook 02's ConvNets are cached (they are trained there) and
no LeNet is. The accuracy-matched LeNets count one epoch each (they stop within the first).
"""

from __future__ import annotations

import argparse
import time

import torch

from helpers import attacks, data, models, robustness_study, training
from helpers.profiles import get


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _epoch_seconds(images: torch.Tensor, labels: torch.Tensor, epochs: int) -> float:
    """Seconds of the last LeNet training epoch of `epochs` (the first pays for compilation)."""
    stamps = []
    training.fit(models.build("lenet"), images, labels, epochs=epochs, lr=0.01,
                 on_epoch=lambda epoch, model: stamps.append(time.perf_counter()))
    return stamps[-1] - stamps[-2]


def _attack_seconds(arch: str, attack: str, n_images: int, steps: int, eps, batch_size: int) -> float:
    """Seconds of `evaluate_attack` on `n_images` test images for one fresh `arch` model."""
    x, y = robustness_study.attack_set(n_images)
    net = models.Normalized(models.build(arch).eval(), 0.2861, 0.3530)
    return _seconds(lambda: attacks.evaluate_attack(net, x, y, eps, attack=attack, steps=steps,
                                                    batch_size=batch_size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--images", type=int, default=500, help="test images per timed attack (multiple of 10)")
    args = parser.parse_args()
    cfg = get(args.profile).robustness
    train = data.load("fashion", True)
    print(f"torch threads: {torch.get_num_threads()}; profile {args.profile}")

    whole = train if cfg.lenet_full_images is None else data.stratified_subset(train, cfg.lenet_full_images, 0)
    epoch = _epoch_seconds(whole.images, whole.labels, epochs=2)
    x, y = data.random_per_class(train, 10, 0)
    step = _epoch_seconds(x, y, epochs=20)  # one step per epoch
    print(f"LeNet: {epoch:.1f} s per epoch on {len(whole)} images; {1000 * step:.0f} ms per step on 100 images")

    small_steps = sum(cfg.lenet_epochs[i] * -(-10 * i // 256) for i in cfg.ipcs)
    lenet_training = cfg.seeds * (cfg.lenet_full_epochs * epoch + small_steps * step + len(cfg.ipcs) * epoch)
    conditions = {"LeNet": 1 + 3 * len(cfg.ipcs),  # original; per ipc condensed, random subset, accuracy-matched
                  "ConvNet": int(cfg.convnet_whole) + 2 * len(cfg.convnet_ipcs)}
    total_attacks = 0.0
    for p in robustness_study.attack_plan(args.profile).itertuples():
        timed = min(p.test_images, args.images)
        s = _attack_seconds(robustness_study.ARCHS[p.arch], p.attack, timed, p.steps, cfg.eps, cfg.batch_size)
        s *= p.test_images / timed
        print(f"{p.arch} {p.attack}: {s:.1f} s per model on {p.test_images} images ({p.steps} step(s), "
              f"{len(cfg.eps)} eps)")
        total_attacks += conditions[p.arch] * cfg.seeds * s
    print(f"estimate: LeNet training {lenet_training / 60:.1f} min, attacks {total_attacks / 60:.1f} min, "
          f"notebook 03 about {(lenet_training + total_attacks) / 60:.1f} min (ConvNets cached by notebook 02)")


if __name__ == "__main__":
    main()
