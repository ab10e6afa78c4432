"""How the networks run: the one place that chooses torch.compile and bf16 autocast.

The study's small networks (`FAST_NETWORKS`: DC's ConvNet and the LeNet) run their forward
passes through `runner`, which applies the process's `plan`: evaluation-protocol training and
prediction (`training.py`), DC's real-batch gradients and inner loop, DM's real-batch
embeddings (`condensation.py`).

* bf16 autocast when a short probe in this process measures it faster than fp32 on this
  device (much faster where the CPU has bf16 hardware, several times slower where it has not,
  so it is never assumed from the hardware's name).
* torch.compile (inductor) for the ConvNet (`COMPILED_NETWORKS`), on top of bf16 or alone:
  compiled fp32 measured 1.5-2.4x eager fp32 on the 2-core build machines without bf16
  hardware, and on one with it compile + bf16 measured 1.4-1.5x bf16 alone in ConvNet training
  and 2.3x in prediction (`benchmarks/bench_condensation.py` prints all four paths). The LeNet
  stays uncompiled: it is so small that compiled steps measured slower (0.43-0.58x). Compiling
  costs 10-60 s per shape and process; one compiled function per method is shared by all model
  instances, so a new model of the same shapes reuses the compiled graphs.

Everything else stays eager fp32: DC's synthetic-image gradients (a double backward, which
compiled graphs do not support), DM's synthetic embeddings, the attacks and the MNIST
network. The plan is made once per process and printed by the notebooks (`describe`);
`DC_ENGINE=eager` switches the fast path off, `DC_ENGINE=nocompile` keeps bf16's probe but
never compiles (for a machine without the C++ compiler inductor needs). Results differ from
eager fp32 only by rounding (tested), and cache keys never include the plan, so artifacts are
shared.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import device

ENGINE_ENV = "DC_ENGINE"
# auto: the fastest measured path for FAST_NETWORKS; nocompile: the same without torch.compile;
# eager: plain fp32
MODES = ("auto", "nocompile", "eager")
FAST_NETWORKS = ("ConvNet", "LeNet")
COMPILED_NETWORKS = ("ConvNet",)  # the LeNet measured slower compiled (module docstring)
BF16_MIN_SPEEDUP = 1.2  # the probe's margin: below it bf16's rounding is not worth its gain


@dataclass(frozen=True)
class Plan:
    """How `runner` runs FAST_NETWORKS in this process."""

    device: str
    compile: bool  # COMPILED_NETWORKS only
    bf16: bool
    probe: str  # what the bf16 decision rests on

    def describe(self) -> str:
        """One line for a notebook's output."""
        compiled = f"on for {', '.join(COMPILED_NETWORKS)}" if self.compile else "off"
        return (f"engine ({self.device}): torch.compile {compiled}, bf16 autocast "
                f"{'on' if self.bf16 else 'off'} for {', '.join(FAST_NETWORKS)} ({self.probe}); "
                f"{ENGINE_ENV}=eager switches both off")


def _mode() -> str:
    mode = os.environ.get(ENGINE_ENV, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"{ENGINE_ENV}={mode!r} is not a valid engine mode; valid: {', '.join(MODES)}")
    return mode


def _step_seconds(bf16: bool, dev: torch.device, batch: int) -> Callable[[], float]:
    """A timer of one ConvNet training step (fp32 or bf16 autocast) on random data."""
    from .models import ConvNet  # models imports nothing from here; local to keep import order light

    net = ConvNet().to(dev)
    x, y = torch.randn(batch, 1, 28, 28, device=dev), torch.randint(10, (batch,), device=dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)

    def timed() -> float:
        start = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return timed


def probe_bf16(dev: torch.device, batch: int = 128, rounds: int = 3) -> tuple[bool, str]:
    """Time ConvNet training steps in fp32 and under bf16 autocast, interleaved (the best of
    `rounds` each, after a warm-up step), and choose bf16 if it is BF16_MIN_SPEEDUP x faster."""
    if dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        return False, "no bf16 on this GPU"
    fp32, bf16 = _step_seconds(False, dev, batch), _step_seconds(True, dev, batch)
    try:
        fp32(), bf16()  # warm-up: kernel selection, allocations
    except RuntimeError as err:  # a backend without bf16 kernels
        return False, f"bf16 unavailable: {err}"
    t32, t16 = min(fp32() for _ in range(rounds)), min(bf16() for _ in range(rounds))
    speedup = t32 / t16
    return speedup >= BF16_MIN_SPEEDUP, f"probe: bf16 {speedup:.2f}x fp32 per training step, batch {batch}"


@functools.cache
def _process_plan() -> Plan:
    dev = device()
    mode = _mode()
    if mode == "eager":
        return Plan(dev.type, compile=False, bf16=False, probe=f"{ENGINE_ENV}=eager")
    bf16, why = probe_bf16(dev)
    return Plan(dev.type, compile=mode == "auto", bf16=bf16, probe=why)


_override: list[Plan] = []


def plan() -> Plan:
    """This process's plan: decided on first use (a probe of a few seconds), then fixed."""
    return _override[-1] if _override else _process_plan()


def describe() -> str:
    return plan().describe()


def eager() -> Plan:
    """The reference path: eager fp32."""
    return Plan(device().type, compile=False, bf16=False, probe="eager reference")


@contextlib.contextmanager
def using(p: Plan) -> Iterator[Plan]:
    """Run the enclosed code under plan `p` (benchmarks and tests compare paths this way)."""
    _override.append(p)
    try:
        yield p
    finally:
        _override.pop()


def _call_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x)


def _call_embed(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.embed(x)


_CALLS = {"forward": _call_forward, "embed": _call_embed}


@functools.cache
def _compiled(method: str) -> Callable:
    # All models of the study share these graphs (per shape, train/eval mode and grad mode),
    # so allow more cached variants than dynamo's default before it falls back to eager.
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    # Inductor imports cpp_extension, whose import prints "No CUDA runtime is found" to stderr
    # on CPU-only machines with CUDA wheels: a note for nobody, kept out of the notebooks.
    with contextlib.redirect_stderr(io.StringIO()):
        importlib.import_module("torch.utils.cpp_extension")
    return torch.compile(_CALLS[method])


def runner(model: nn.Module, method: str = "forward") -> Callable[[torch.Tensor], torch.Tensor]:
    """`model.forward` (or `model.embed`) as the plan runs it; float32 outputs either way.
    Networks outside FAST_NETWORKS, and any model under `using(eager())`, run eagerly."""
    if method not in _CALLS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(_CALLS)}")
    p, name = plan(), type(model).__name__
    if name not in FAST_NETWORKS or not (p.compile or p.bf16):
        return getattr(model, method)
    compiled = p.compile and name in COMPILED_NETWORKS
    call = functools.partial(_compiled(method), model) if compiled else getattr(model, method)
    if not p.bf16:
        return call

    def autocast_call(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            return call(x).float()

    return autocast_call
