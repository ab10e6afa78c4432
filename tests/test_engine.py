"""The engine: one plan per process, a switch-off, the fast path's results equal eager's
within rounding, and compilation paid once per shape rather than once per model."""

import warnings

import pytest
import torch
from torch._dynamo.utils import counters

from helpers import cw, data, distillation, engine, model_runs, models, training

FAST = engine.Plan("cpu", compile=True, bf16=True, probe="test: every fast option on")


@pytest.fixture
def fresh_plan(monkeypatch):
    """A process plan decided again under the test's environment, restored afterwards."""
    engine._process_plan.cache_clear()
    yield monkeypatch
    engine._process_plan.cache_clear()


def test_environment_variable_switches_the_fast_path_off(fresh_plan):
    fresh_plan.setenv(engine.ENGINE_ENV, "eager")
    p = engine.plan()
    assert not p.compile and not p.bf16 and engine.ENGINE_ENV in engine.describe()
    net = models.ConvNet(width=8)
    assert engine.runner(net) == net.forward  # nothing wraps the network


def test_unknown_engine_mode_is_rejected(fresh_plan):
    fresh_plan.setenv(engine.ENGINE_ENV, "turbo")
    with pytest.raises(ValueError, match=f"{engine.ENGINE_ENV}='turbo'.*valid: auto, nocompile, eager"):
        engine.plan()


def test_nocompile_mode_never_compiles(fresh_plan):
    fresh_plan.setenv(engine.ENGINE_ENV, "nocompile")
    assert not engine.plan().compile and "torch.compile off" in engine.describe()


def test_plan_is_decided_once_per_process(fresh_plan):
    fresh_plan.setenv(engine.ENGINE_ENV, "auto")
    first = engine.plan()
    assert (first.compile or first.bf16) and engine.plan() is first  # the probe is not repeated
    assert "\n" not in first.describe()


def test_plan_is_the_same_whatever_grad_mode_it_is_first_asked_in(fresh_plan):
    """The plan is fixed on first use, e.g. in an evaluation under no_grad: its probe trains."""
    fresh_plan.setenv(engine.ENGINE_ENV, "nocompile")
    fresh_plan.setattr(engine, "BF16_MIN_SPEEDUP", 0.0)  # any measured probe chooses bf16: no timing noise
    plans = {"plain": engine.plan()}
    for name, context in {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode}.items():
        engine._process_plan.cache_clear()
        with warnings.catch_warnings(), context():
            warnings.simplefilter("error")  # a failed probe warns
            plans[name] = engine.plan()
    assert {(p.bf16, p.probe.startswith("probe: bf16 ")) for p in plans.values()} == {(True, True)}, plans


def _failing_step(fails: str, error: str):
    def step_seconds(bf16, dev, batch):
        def timed():
            if fails == "both" or bf16:
                raise RuntimeError(error)
            return 1.0
        return timed
    return step_seconds


def test_a_failed_probe_warns_and_says_so_in_the_engine_line(fresh_plan):
    fresh_plan.setenv(engine.ENGINE_ENV, "nocompile")
    fresh_plan.setattr(engine, "_step_seconds", _failing_step("both", "does not have a grad_fn"))
    with pytest.warns(UserWarning, match="PROBE FAILED.*RuntimeError: does not have a grad_fn.*runs fp32"):
        line = engine.describe()
    assert not engine.plan().bf16 and "bf16 PROBE FAILED" in line and "does not have a grad_fn" in line


def test_missing_bf16_kernels_switch_bf16_off_quietly(fresh_plan):
    fresh_plan.setenv(engine.ENGINE_ENV, "nocompile")
    fresh_plan.setattr(engine, "_step_seconds", _failing_step("bf16", "\"addmm\" not implemented for 'BFloat16'"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = engine.plan()
    assert not p.bf16 and p.probe.startswith("bf16 unavailable: ")


def test_only_the_study_networks_take_the_fast_path():
    with engine.using(FAST):
        net = models.MnistNet()
        assert engine.runner(net) == net.forward  # eager: compile was measured slower for it
        graphs = counters["stats"]["unique_graphs"]
        engine.runner(models.LeNet())(torch.zeros(2, 1, 28, 28))  # bf16, but not compiled
        assert counters["stats"]["unique_graphs"] == graphs
        with pytest.raises(ValueError, match="valid: forward, embed"):
            engine.runner(models.ConvNet(width=8), "backward")


class _Recording(models.MnistNet):
    """The MNIST network, noting whether each forward pass ran under autocast and in which dtype."""

    def forward(self, x):
        self.seen.append((torch.is_autocast_enabled(x.device.type), x.dtype))
        return super().forward(x)


class _RecordingFast(_Recording):
    FAST_PATH = ("bf16",)  # would run in bf16 if anything called it through `engine.runner`


def test_the_mnist_network_trains_in_bf16_but_predicts_and_is_attacked_in_fp32():
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8) % 10
    net, fast = _Recording(), _RecordingFast()
    net.seen, fast.seen = [], []
    with engine.using(FAST):
        assert "Tempered" in engine.describe()
        training.fit(distillation.Tempered(net, 50.0), x, y, epochs=1, lr=0.01, batch_size=8)
        assert net.seen[-1] == (True, torch.float32)  # the training step: under bf16 autocast
        net.seen.clear()
        training.predict(net, x)
        assert net.seen == [(False, torch.float32)]  # prediction (soft labels, accuracy): fp32
        cw.cw_l2(fast, x[:2], (y[:2] + 1) % 10, binary_search_steps=1, max_iter=2)
        cw.cw_l0(fast, x[:1], (y[:1] + 1) % 10, max_iter=2)
        assert set(fast.seen) == {(False, torch.float32)}  # the attacks: fp32, whatever the plan


@pytest.fixture(scope="module")
def small_task():
    train, test = data.load("fashion", True), data.load("fashion", False)
    x, y = data.random_per_class(train, 10, seed=0)
    return x, y, data.stratified_subset(test, 1000, seed=0)


def _train(x, y, test, seed):
    torch.manual_seed(seed)
    model = models.ConvNet(width=32)
    training.fit(model, x, y, epochs=15, lr=0.01, batch_size=64, seed=seed)
    return model, training.evaluate(model, test.images, test.labels)[0]


def test_fast_path_matches_eager_and_compiles_once_per_shape(small_task):
    x, y, test = small_task
    with engine.using(engine.eager()):
        eager_model, eager_acc = _train(x, y, test, seed=0)
    with engine.using(FAST):
        _, fast_acc = _train(x, y, test, seed=0)
        graphs = counters["stats"]["unique_graphs"]
        accs = [_train(x, y, test, seed=s)[1] for s in (1, 2)]  # new models, same shapes
        assert counters["stats"]["unique_graphs"] == graphs  # reused the compiled graphs
        fast_logits = training.predict(eager_model, test.images)
    eager_logits = training.predict(eager_model, test.images)
    # the same weights give the same predictions up to bf16 rounding ...
    assert (fast_logits.argmax(1) == eager_logits.argmax(1)).float().mean() > 0.97
    assert torch.allclose(fast_logits, eager_logits, atol=0.1 * eager_logits.abs().max().item())
    # ... and a whole training run the same accuracy within a few points
    assert abs(fast_acc - eager_acc) < 0.03, (fast_acc, eager_acc)
    assert all(a > 0.5 for a in accs)


def test_cached_models_are_shared_between_the_paths(small_task):
    x, y, test = small_task
    kwargs = {"arch": "lenet", "n_models": 1, "epochs": 1, "tag": {"data": "engine test"}, "test": (test.images,
                                                                                                     test.labels)}
    with engine.using(engine.eager()):
        eager_run = model_runs.train_models(x, y, **kwargs)[0]
    with engine.using(FAST):
        fast_run = model_runs.train_models(x, y, **kwargs)[0]  # loaded from the cache, not retrained
    assert all(torch.equal(eager_run["state_dict"][k], v) for k, v in fast_run["state_dict"].items())
