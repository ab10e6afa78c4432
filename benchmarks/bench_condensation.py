"""Speed of the condensation study's engine paths (a script, not a test).

    DC_DATA_ROOT=../shared/datasets python benchmarks/bench_condensation.py [--threads N] [--tiny] [--ipcs 1 10 50]

Prints, in one run on this machine, for each engine path (eager fp32, torch.compile fp32,
bf16 autocast eager, compile + bf16) images/s of: ConvNet training at batch 100 and 256,
ConvNet forward (batch 1000, no grad), LeNet training and the MNIST network's training at a
temperature (bf16 only: the engine never compiles them);
LeNet and MNIST-network training eager vs compiled (why the engine compiles neither); then
seconds per DC iteration (ipc 1, paper loops) and per DM iteration (ipc 10, DSA) at the
default profile's batch_real, and seconds per 300-epoch evaluation model (DC's protocol,
training plus the 10k-image test) at ipc 1, 10 and 50, eager vs the engine's own plan.
`--tiny` shrinks every measurement to check that the script runs (numbers meaningless).
Numbers are noisy when other work shares the cores: run it on an idle machine.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from helpers import condensation, condensation_study, data, distillation, engine, models
from helpers.runtime import device
from helpers.training import evaluate, fit

PATHS = {"eager": (False, False), "compile": (True, False), "bf16": (False, True), "compile+bf16": (True, True)}


def _plan(name: str) -> engine.Plan:
    compiled, bf16 = PATHS[name]
    return engine.Plan(device().type, compile=compiled, bf16=bf16, probe="benchmark")


def _best_rate(step, items: int, steps: int, rounds: int = 3) -> float:
    """Items per second of `step`: warm-up (compiles), then the best of `rounds` timed runs."""
    step()
    step()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, time.perf_counter() - start)
    return steps * items / best


def train_rate(arch: str, batch: int, steps: int, compile_directly: bool = False, tempered: bool = False) -> float:
    """Training images/s of `arch` on the engine's current plan (or, `compile_directly`, on
    torch.compile of the network itself: for networks the engine leaves eager); `tempered`
    trains it inside `distillation.Tempered`, as notebook 04 does."""
    net = models.build(arch).to(device())
    if tempered:
        net = distillation.Tempered(net, 100.0)
    x, y = torch.randn(batch, 1, 28, 28, device=device()), torch.randint(10, (batch,), device=device())
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    run = torch.compile(net) if compile_directly else engine.runner(net)

    def step():
        loss = F.cross_entropy(run(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return _best_rate(step, batch, steps)


def forward_rate(batch: int, steps: int) -> float:
    net = models.ConvNet().to(device()).eval()
    x = torch.randn(batch, 1, 28, 28, device=device())
    run = engine.runner(net)

    def step():
        with torch.no_grad():
            run(x)

    return _best_rate(step, batch, steps)


def iteration_seconds(train: data.Split, ipc: int, settings: dict, iterations: int) -> float:
    """Wall seconds per iteration of `condense` (after one warm-up iteration)."""
    kwargs = {**settings, "iterations": 1, "snapshots": 0}
    condensation.condense(train, ipc, desc="warm-up", **kwargs)
    start = time.perf_counter()
    condensation.condense(train, ipc, desc="timed", **{**kwargs, "iterations": iterations})
    return (time.perf_counter() - start) / iterations


def evaluation_seconds(train: data.Split, test: data.Split, ipc: int, epochs: int) -> tuple[float, float]:
    """(seconds, accuracy) of one DC-protocol evaluation model on ipc random real images per
    class: `epochs` epochs of training plus the test."""
    x, y = data.random_per_class(train, ipc, seed=0)
    settings = condensation_study.evaluation_settings("default", ipc)
    torch.manual_seed(0)
    net = models.ConvNet()
    start = time.perf_counter()
    fit(net, x, y, epochs=epochs, lr=settings["lr"], momentum=settings["momentum"],
        weight_decay=settings["weight_decay"], batch_size=settings["batch_size"], decay_at=settings["decay_at"],
        desc=f"ipc {ipc}")
    acc, _ = evaluate(net, test.images, test.labels)
    return time.perf_counter() - start, acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--tiny", action="store_true", help="a few steps of everything: checks the script runs")
    parser.add_argument("--ipcs", type=int, nargs="+", default=[1, 10, 50],
                        help="ipcs of the 300-epoch evaluation models timed (ipc 50 alone takes ~12 min eager+engine)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    steps, epochs, iters = (1, 2, 1) if args.tiny else (5, 300, 3)
    print(f"device {device()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(engine.describe())
    train, test = data.load("fashion", True), data.load("fashion", False)
    if args.tiny:
        test = data.stratified_subset(test, 500, 0)

    print("\nImages/s per engine path (best of 3 timed runs after a warm-up that includes compiling):")
    cases = [("ConvNet training, batch 100", lambda: train_rate("convnet", 100, steps)),
             ("ConvNet training, batch 256", lambda: train_rate("convnet", 256, steps)),
             ("ConvNet forward, batch 1000", lambda: forward_rate(1000, steps)),
             ("LeNet training, batch 256 (never compiled)", lambda: train_rate("lenet", 256, steps * 4)),
             ("MNIST network training at T, batch 128 (never compiled)",
              lambda: train_rate("mnistnet", 128, steps * 2, tempered=True))]
    print(f"  {'':56}" + "".join(f"{p:>14}" for p in PATHS))
    for label, measure in cases:
        rates = []
        for name in PATHS:
            with engine.using(_plan(name)):
                rates.append(measure())
        print(f"  {label:56}" + "".join(f"{r:14.0f}" for r in rates) + f"   ({max(rates) / rates[0]:.2f}x best/eager)")
    print("  Networks outside FAST_PATH with compile, eager fp32 vs torch.compile of the network itself:")
    for label, arch, batch, n in [("LeNet training", "lenet", 256, steps * 4),
                                  ("MNIST network training", "mnistnet", 128, steps * 2)]:
        with engine.using(engine.eager()):
            eager_rate, compiled_rate = (train_rate(arch, batch, n, compile_directly=c) for c in (False, True))
        print(f"    {label}, batch {batch}: eager {eager_rate:.0f}, torch.compile {compiled_rate:.0f} images/s "
              f"({compiled_rate / eager_rate:.2f}x)")

    print("\nCondensation, seconds per iteration (default profile's settings; eager vs this process's plan):")
    for label, ipc in [("DC", 1), ("DM", 10)]:
        settings = condensation_study.condense_settings("default", ipc,
                                                        method=label.lower(), init="real")
        if args.tiny:
            settings = {**settings, "batch_real": 8}
        times = {}
        for name, p in [("eager", engine.eager()), ("engine", engine.plan())]:
            with engine.using(p):
                times[name] = iteration_seconds(train, ipc, settings, iters)
        print(f"  {label} ipc {ipc:>2} (batch_real {settings['batch_real']}, loops {settings['outer_loop']}/"
              f"{settings['inner_loop']}, {settings['dsa_strategy']}): eager {times['eager']:.2f} s, "
              f"engine {times['engine']:.2f} s ({times['eager'] / times['engine']:.2f}x)")

    print(f"\nEvaluation, seconds per model ({epochs} epochs of DC's protocol + the {len(test)}-image test):")
    for ipc in args.ipcs:
        out = {}
        for name, p in [("eager", engine.eager()), ("engine", engine.plan())]:
            with engine.using(p):
                out[name] = evaluation_seconds(train, test, ipc, epochs)
        (te, ae), (tf, af) = out["eager"], out["engine"]
        print(f"  ipc {ipc:>2}: eager {te:7.1f} s (acc {100 * ae:.1f} %), engine {tf:7.1f} s (acc {100 * af:.1f} %), "
              f"{te / tf:.2f}x")
    print(f"\ndynamo: {torch._dynamo.utils.counters['stats']['unique_graphs']} graphs compiled in this run")


if __name__ == "__main__":
    main()
