"""How the networks run: the one place that chooses torch.compile and bf16 autocast.

Each network class declares in `FAST_PATH` what it may use (`models.py`: the ConvNet both, the
LeNet bf16 only, the MNIST network neither; its training wrapper `distillation.Tempered` bf16, so
it trains in bf16 but predicts in fp32; as measured by `benchmarks/bench_condensation.py`).
Their forward passes go through `runner`, which applies the process's `plan`: evaluation-protocol
training and prediction (`training.py`), DC's real-batch gradients and inner loop, DM's
real-batch embeddings (`condensation.py`).

* bf16 autocast when a short probe in this process measures it faster than fp32 on this device
  (much faster where the CPU has bf16 hardware, several times slower where it has not, so it is
  never assumed from the hardware's name). The probe trains whatever the caller's grad mode; one
  that fails for another reason than missing bf16 kernels warns and says so in the engine line.
* torch.compile (inductor), on top of bf16 or alone. Compiling costs 10-60 s per shape and
  process; one compiled function per method is shared by all model instances, so a new model of
  the same shapes reuses the compiled graphs.

Everything else stays eager fp32: DC's synthetic-image gradients (a double backward, which
compiled graphs do not support), DM's synthetic embeddings and the attacks. The plan is made
once per process and printed by the notebooks (`describe`); `DC_ENGINE=eager` switches the fast
path off, `DC_ENGINE=nocompile` keeps bf16's probe but never compiles (for a machine without the
C++ compiler inductor needs). Results differ from eager fp32 only by rounding (tested), and cache
keys never include the plan, so artifacts are shared.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import models
from .runtime import device

ENGINE_ENV = "DC_ENGINE"
# auto: the fastest measured path of each network's FAST_PATH; nocompile: the same without torch.compile;
# eager: plain fp32
MODES = ("auto", "nocompile", "eager")
BF16_MIN_SPEEDUP = 1.2  # the probe's margin: below it bf16's rounding is not worth its gain


@dataclass(frozen=True)
class Plan:
    """How `runner` runs the networks in this process (each within its class's FAST_PATH)."""

    device: str
    compile: bool
    bf16: bool
    probe: str  # what the bf16 decision rests on

    def describe(self) -> str:
        """One line for a notebook's output."""
        compiled = f"on for {', '.join(_using('compile'))}" if self.compile else "off"
        return (f"engine ({self.device}): torch.compile {compiled}, bf16 autocast "
                f"{'on' if self.bf16 else 'off'} for {', '.join(_using('bf16'))} ({self.probe}); "
                f"{ENGINE_ENV}=eager switches both off")


_WRAPPERS: list[type] = []  # modules around a network with their own FAST_PATH (`declare`)


def declare(cls: type) -> type:
    """Class decorator: name a wrapper module (e.g. `distillation.Tempered`) in `describe`'s line."""
    _WRAPPERS.append(cls)
    return cls


def _using(path: str) -> list[str]:
    """The study's networks (and declared wrappers) whose FAST_PATH includes `path`."""
    return [cls.__name__ for cls in (*models.ARCHITECTURES.values(), *_WRAPPERS) if path in cls.FAST_PATH]


def _mode() -> str:
    mode = os.environ.get(ENGINE_ENV, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"{ENGINE_ENV}={mode!r} is not a valid engine mode; valid: {', '.join(MODES)}")
    return mode


def _step_seconds(bf16: bool, dev: torch.device, batch: int) -> Callable[[], float]:
    """A timer of one ConvNet training step (fp32 or bf16 autocast) on random data."""
    net = models.ConvNet().to(dev)
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
    `rounds` each, after a warm-up step), and choose bf16 if it is BF16_MIN_SPEEDUP x faster.
    The caller's context does not count: the plan is fixed on first use, which may be inside
    `torch.no_grad()` or `torch.inference_mode()` (an evaluation), where a training step fails.
    A probe that fails for any reason but missing bf16 kernels warns: it leaves the whole
    process in fp32."""
    if dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        return False, "no bf16 on this GPU"
    with torch.inference_mode(False), torch.enable_grad(), torch.autocast(dev.type, enabled=False):
        try:
            fp32, bf16 = _step_seconds(False, dev, batch), _step_seconds(True, dev, batch)
            fp32()  # warm-up: kernel selection, allocations
        except Exception as err:  # fp32 failing is no bf16 matter: reported, and the run goes on
            return _failed(err)
        try:
            bf16()
        except Exception as err:
            if isinstance(err, RuntimeError) and re.search(r"(?i)bfloat16|bf16", str(err)):
                return False, f"bf16 unavailable: {err}"  # a backend without bf16 kernels
            return _failed(err)
        t32, t16 = min(fp32() for _ in range(rounds)), min(bf16() for _ in range(rounds))
    speedup = t32 / t16
    return speedup >= BF16_MIN_SPEEDUP, f"probe: bf16 {speedup:.2f}x fp32 per training step, batch {batch}"


def _failed(err: Exception) -> tuple[bool, str]:
    why = f"bf16 PROBE FAILED, not measured: {type(err).__name__}: {err}"
    warnings.warn(f"engine: {why}; this process runs fp32", stacklevel=3)
    return False, why


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
    A network runs only what its class's FAST_PATH allows; any model under `using(eager())` runs eagerly."""
    if method not in _CALLS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(_CALLS)}")
    p, fast = plan(), getattr(type(model), "FAST_PATH", ())  # each network class declares what it may use
    compiled, bf16 = p.compile and "compile" in fast, p.bf16 and "bf16" in fast
    call = functools.partial(_compiled(method), model) if compiled else getattr(model, method)
    if not bf16:
        return call

    def autocast_call(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            return call(x).float()

    return autocast_call
