"""Timings behind the condensation study's CPU budget (a script, not a test).

    DC_DATA_ROOT=../shared/datasets python benchmarks/bench_condensation.py [--threads N] [--quick]

Prints, on this machine: seconds per condensation iteration for each ipc at the paper's
settings and at the default profile's (one outer step and one inner-loop epoch timed, then
extrapolated, as `condensation.iteration_seconds` does), ConvNet training images/s in fp32
and under bf16 autocast, channels-last, and the seconds to train and test one evaluation
model per ipc under the default profile. Numbers are noisy when other work shares the cores.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from helpers import condensation, data, models
from helpers.config import autocast, device
from helpers.profiles import budget
from helpers.training import evaluate, fit


def train_images_per_second(batch: int = 256, steps: int = 3, bf16: bool = False,
                            channels_last: bool = False) -> float:
    dev = device()
    net = models.ConvNet().to(dev)
    x = torch.randn(batch, 1, 28, 28, device=dev)
    y = torch.randint(10, (batch,), device=dev)
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

    def step():
        if bf16:
            with autocast(dev):
                loss = F.cross_entropy(net(x), y)
        else:
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="skip the paper-setting and evaluation timings")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"device {device()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    train, test = data.load("fashion", True), data.load("fashion", False)

    print("\nConvNet training throughput (batch 256):")
    for label, kw in [("fp32", {}), ("bf16 autocast", {"bf16": True}), ("fp32 channels-last", {"channels_last": True})]:
        print(f"  {label:>20}: {train_images_per_second(**kw):7.0f} images/s")

    print("\nCondensation, seconds per iteration (extrapolated from one timed outer step + inner epoch):")
    profiles = ["default"] if args.quick else ["default", "paper"]
    for ipc in budget("default", "condense").ipcs:
        for profile in profiles:
            s = condensation.condense_settings(profile, ipc)
            cost = condensation.iteration_seconds(train, ipc, s)
            print(f"  ipc {ipc:>2} {profile:>8} ({s['method']}, batch_real {s['batch_real']}, loops "
                  f"{s['outer_loop']}/{s['inner_loop']}): {cost['iteration_s']:8.1f} s/iteration, "
                  f"{s['iterations']} iterations -> {cost['run_s'] / 60:8.1f} min")

    if args.quick:
        return
    print("\nEvaluation, seconds per model (default profile's epochs; train + full 10k test):")
    for ipc in budget("default", "evaluate").ipcs:
        settings = condensation.evaluation_settings("default", ipc)
        x, y = data.random_per_class(train, ipc, seed=0)
        torch.manual_seed(0)
        net = models.ConvNet()
        start = time.perf_counter()
        fit(net, x, y, epochs=settings["epochs"], lr=settings["lr"], momentum=settings["momentum"],
            weight_decay=settings["weight_decay"], batch_size=settings["batch_size"], desc=f"ipc {ipc}")
        t_train = time.perf_counter() - start
        acc, _ = evaluate(net, test.images, test.labels)
        t_all = time.perf_counter() - start
        print(f"  ipc {ipc:>2}: {settings['epochs']} epochs {t_train:6.1f} s + test {t_all - t_train:5.1f} s "
              f"= {t_all:6.1f} s (random real, acc {acc:.3f})")


if __name__ == "__main__":
    main()
