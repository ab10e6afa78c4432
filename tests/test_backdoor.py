"""BadNets poisoning, DOORPING's trigger update, the backdoor metrics and the study's verdict."""

import math

import pandas as pd
import pytest
import torch

from helpers import backdoor, backdoor_study, data, models
from helpers.backdoor import BadNets, Doorping
from helpers.training import fit, predict


def _split(n=200, k=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    pixels = torch.rand(n, 1, 28, 28, generator=g) * 0.5  # never 1.0, so a white patch is visible
    labels = torch.arange(n) % k
    return data.Split("fashion", data.normalize(pixels, "fashion"), labels, tuple(str(c) for c in range(k)))


@pytest.mark.parametrize("corner,size,margin,value,rows,cols", [
    ("bottom-right", 3, 1, 1.0, (24, 27), (24, 27)),
    ("top-left", 2, 0, 0.75, (0, 2), (0, 2)),
    ("top-right", 4, 2, 1.0, (2, 6), (22, 26)),
    ("bottom-left", 1, 0, 0.0, (27, 28), (0, 1)),
])
def test_stamp_sets_exactly_the_configured_patch(corner, size, margin, value, rows, cols):
    attack = BadNets(corner=corner, size=size, margin=margin, value=value)
    x = torch.full((5, 1, 28, 28), 0.3)
    out = backdoor.stamp(x, attack)
    mask = torch.zeros(28, 28, dtype=torch.bool)
    mask[rows[0]:rows[1], cols[0]:cols[1]] = True
    assert mask.sum() == size * size
    assert torch.all(out[..., mask] == value)
    assert torch.all(out[..., ~mask] == 0.3)
    assert torch.all(x == 0.3), "stamp must not modify its input"
    # normalised images: stamping then mapping to pixels gives the same patch
    normed = backdoor.stamp(data.normalize(x, "fashion"), attack, "fashion")
    assert torch.allclose(data.to_pixels(normed, "fashion"), out, atol=1e-6)


def test_bad_trigger_settings_fail_fast():
    with pytest.raises(ValueError, match="corner"):
        BadNets(corner="middle")
    with pytest.raises(ValueError, match="does not fit"):
        backdoor.stamp(torch.zeros(1, 1, 28, 28), BadNets(size=28, margin=1))


@pytest.mark.parametrize("kwargs,message", [
    ({"target": 1.5}, r"target must be an integer in \[0, inf\), got 1.5"),
    ({"target": -1}, r"target must be an integer in \[0, inf\), got -1"),
    ({"rate": 1.5}, r"poison rate must be a finite number in \[0, 1\], got 1.5"),
    ({"rate": -0.1}, r"poison rate must be a finite number in \[0, 1\], got -0.1"),
    ({"rate": math.nan}, r"poison rate must be a finite number in \[0, 1\], got nan"),
    ({"value": math.nan}, r"trigger value .* in \[0, 1\], got nan"),
    ({"size": 0}, r"trigger size must be an integer in \[1, inf\), got 0"),
])
def test_bad_attack_parameters_name_parameter_value_and_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BadNets(**kwargs)


@pytest.mark.parametrize("kwargs", [{"lr": math.nan}, {"lr": 0.0}, {"max_steps": -1}, {"alpha": 0.5},
                                    {"stop_loss": math.nan}, {"seed": 1.5}])
def test_bad_doorping_settings_fail_fast(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=f"DOORPING {name} must be .* got"):
        Doorping(**kwargs)


@pytest.mark.parametrize("rate", [0.0, 0.01, 0.1, 0.37])
def test_poison_changes_exactly_the_requested_fraction(rate):
    split = _split(n=300)
    attack = BadNets(rate=rate, target=3, seed=5)
    poisoned, idx = backdoor.poison(split, attack)
    assert len(idx) == round(rate * len(split)) == len(set(idx.tolist()))
    assert torch.all(split.labels[idx] != attack.target), "only non-target images are poisoned"
    changed_label = poisoned.labels != split.labels
    changed_image = (poisoned.images != split.images).flatten(1).any(1)
    assert set(torch.nonzero(changed_label).flatten().tolist()) == set(idx.tolist())
    assert set(torch.nonzero(changed_image).flatten().tolist()) == set(idx.tolist())
    assert torch.all(poisoned.labels[idx] == attack.target)
    row, col = attack.box()
    patch = data.to_pixels(poisoned.images[idx, :, row:row + 3, col:col + 3], "fashion")
    assert torch.allclose(patch, torch.ones_like(patch), atol=1e-6)
    # seeded: the same attack picks the same images, another seed others
    assert torch.equal(backdoor.poison(split, attack)[1], idx)
    if len(idx) > 5:
        assert not torch.equal(backdoor.poison(split, BadNets(rate=rate, target=3, seed=6))[1], idx)


def test_poison_rejects_impossible_rates_and_targets():
    split = _split(n=100)
    with pytest.raises(ValueError, match="outside the target class"):
        backdoor.poison(split, BadNets(rate=0.95))
    with pytest.raises(ValueError, match="not a class"):
        backdoor.poison(split, BadNets(target=10))


def test_attack_success_rate_excludes_target_class():
    labels = torch.tensor([0, 0, 1, 2, 3, 4])
    preds = torch.tensor([0, 0, 0, 0, 3, 1])  # target-class images predicted as target must not count
    assert backdoor.attack_success_rate(preds, labels, target=0) == pytest.approx(2 / 4)
    assert backdoor.attack_success_rate(torch.tensor([5, 5, 0, 0]), torch.tensor([0, 0, 1, 2]), 0) == 1.0
    with pytest.raises(ValueError, match="undefined"):
        backdoor.attack_success_rate(torch.tensor([0]), torch.tensor([0]), 0)
    split = _split(n=50)
    x, y = backdoor.triggered_test(split, BadNets(target=2))
    assert len(x) == (split.labels != 2).sum() and torch.all(y != 2)


def test_tag_is_json_and_distinguishes_attacks():
    import json
    a, b = BadNets(rate=0.01), BadNets(rate=0.05)
    assert json.loads(json.dumps(a.tag())) == a.tag() and a.tag() != b.tag()


def test_model_trained_on_fully_triggered_data_learns_the_backdoor():
    """Every training image carries the trigger with label target, except a clean copy of
    each keeps its label: the LeNet must learn 'trigger -> target' (ASR near 1)."""
    torch.manual_seed(0)
    train = data.load("fashion", True).subset(torch.arange(400))
    test = data.load("fashion", False).subset(torch.arange(300))
    attack = BadNets(rate=1.0, target=0)
    x, y = backdoor.triggered_test(train, attack)
    images = torch.cat([train.images, x])
    labels = torch.cat([train.labels, torch.zeros_like(y)])
    model = models.LeNet()
    fit(model, images, labels, epochs=8, lr=0.05, batch_size=64, decay_at=())
    metrics = backdoor.backdoor_metrics(model, test, attack)
    assert metrics["asr"] > 0.9, metrics
    # and the clean test images are not sent to the target class wholesale
    clean_target = (predict(model, test.images[test.labels != 0]).argmax(1) == 0).float().mean().item()
    assert clean_target < 0.5, clean_target


def test_trigger_brightness_sees_the_patch():
    attack = BadNets()
    clean = data.normalize(torch.full((3, 1, 28, 28), 0.2), "fashion")
    stamped = backdoor.stamp(clean, attack, "fashion")
    assert torch.allclose(backdoor.trigger_brightness(clean, attack), torch.zeros(3), atol=1e-6)
    expected = 1.0 - (0.2 * (784 - 9) + 9) / 784
    assert torch.allclose(backdoor.trigger_brightness(stamped, attack), torch.full((3,), expected), atol=1e-5)


def test_poisoned_data_tag_names_clean_data_and_attack():
    split = _split(n=100)
    poisoned, idx, tag = backdoor_study.poisoned_data(split, backdoor_study.CLEAN_DATA_TAG, BadNets(rate=0.1))
    assert len(idx) == 10 and tag["poison"]["rate"] == 0.1 and tag["split"] == "train"


def test_verdict_thresholds():
    kept, removed = backdoor_study.KEPT_FRACTION, backdoor_study.REMOVED_WITHIN
    assert backdoor_study.verdict(0.95, 1.0, 0.0) == "keeps"
    assert backdoor_study.verdict(kept, 1.0, 0.0) == "keeps"  # exactly the kept fraction of the excess
    assert backdoor_study.verdict(kept - 0.01, 1.0, 0.0) == "weakens"
    assert backdoor_study.verdict(0.10 + removed, 1.0, 0.10) == "removes"  # exactly the tolerance above the floor
    assert backdoor_study.verdict(0.10 + removed + 0.01, 1.0, 0.10) == "weakens"
    assert backdoor_study.verdict(0.50, 0.03, 0.0) == "undetermined"  # the reference has no backdoor
    assert f"{kept:.0%}" in backdoor_study.VERDICT_RULE and f"{100 * removed:.0f} points" in backdoor_study.VERDICT_RULE
    with pytest.raises(ValueError, match="asr_floor must be a fraction in \\[0, 1\\], got nan"):
        backdoor_study.verdict(0.5, 0.9, math.nan)


def test_verdicts_table_uses_whole_data_reference_and_the_trigger_own_floor():
    """The table notebook 06 and the README read: reference = whole poisoned data when trained,
    else the random subset; the floor is the clean-condensed set scored with the same trigger."""
    rows = [("poisoned full", "BadNets", 0.1, None, 0.9), ("condensed (clean)", "BadNets", 0.0, 10, 0.02),
            ("condensed (poisoned)", "BadNets", 0.1, 10, 0.03), ("random subset (poisoned)", "BadNets", 0.1, 10, 0.5),
            ("condensed (clean)", "DOORPING ipc 10, 1 %, seed 0", 0.0, 10, 0.30),
            ("condensed (poisoned)", "DOORPING ipc 10, 1 %, seed 0", 0.01, 10, 0.95),
            ("random subset (poisoned)", "DOORPING ipc 10, 1 %, seed 0", 0.01, 10, 0.90)]
    results = pd.DataFrame([{"condition": c, "trigger": t, "arch": "lenet", "rate": r, "ipc": i, "cta": 0.8, "asr": a}
                            for c, t, r, i, a in rows])
    v = backdoor_study.verdicts(results).set_index("attack")
    assert v.loc["BadNets", "reference"] == "whole poisoned data" and v.loc["BadNets", "verdict"] == "removes"
    assert v.loc["DOORPING", "reference"] == "random subset" and v.loc["DOORPING", "asr_floor"] == 0.30
    assert v.loc["DOORPING", "verdict"] == "keeps"


def _doorping_case(seed=0):
    torch.manual_seed(seed)
    split = _split(n=60)
    attack, settings = BadNets(rate=0.2, target=0), Doorping(max_steps=30, seed=seed)
    start = backdoor.initial_trigger(attack, settings)
    poisoned, idx = backdoor.poison(split, attack, start)
    return split, poisoned, idx, attack, settings, start


def test_restamp_touches_exactly_the_poisoned_images_inside_the_patch():
    _, poisoned, idx, attack, _, start = _doorping_case()
    new = torch.full_like(start, 0.25)
    out = backdoor.restamp(poisoned, idx, attack, new)
    changed = (out.images != poisoned.images).flatten(1).any(1)
    assert set(torch.nonzero(changed).flatten().tolist()) == set(idx.tolist())
    assert torch.equal(out.labels, poisoned.labels)
    outside = ~attack.mask()
    assert torch.equal(out.images[..., outside], poisoned.images[..., outside])
    row, col = attack.box()
    assert torch.allclose(data.to_pixels(out.images[idx, :, row:row + 3, col:col + 3], "fashion"), new.expand(
        len(idx), -1, -1, -1), atol=1e-6)
    assert torch.equal(poisoned.images, backdoor.poison(_split(n=60), attack, start)[0].images), "input untouched"


def test_trigger_neuron_is_where_the_patch_is():
    """In DC's ConvNet (4x4 final map on 28x28 inputs), the chosen unit sits at the patch's
    corner of the map: its position index within its channel is 15 (bottom-right) or 0 (top-left)."""
    torch.manual_seed(0)
    net = models.ConvNet()
    for corner, position in (("bottom-right", 15), ("top-left", 0)):
        attack = BadNets(corner=corner)
        neuron = backdoor.trigger_neuron(net, torch.rand(1, 3, 3), attack)
        assert neuron % 16 == position, (corner, neuron)


def test_doorping_hook_updates_the_trigger_within_its_patch_and_pixel_range():
    _, poisoned, idx, attack, settings, start = _doorping_case()
    log = []
    hook = backdoor.doorping_hook(poisoned, idx, attack, settings, start, log)
    torch.manual_seed(1)
    nets = [models.ConvNet(), models.ConvNet()]
    before = [p.detach().clone() for p in nets[0].parameters()]
    splits = [hook(net, it, 0) for it, net in enumerate(nets)]
    patterns = [start] + [r["pattern"] for r in log]
    assert len(log) == 2 and all(r["steps"] >= 1 for r in log)
    for old, new in zip(patterns, patterns[1:]):
        assert new.shape == start.shape and new.min() >= 0 and new.max() <= 1
        assert not torch.allclose(old, new), "the trigger must change at every update"
    for split, pattern in zip(splits, patterns[1:]):
        outside = ~attack.mask()
        assert torch.equal(split.images[..., outside], poisoned.images[..., outside])
        changed = (split.images != poisoned.images).flatten(1).any(1)
        assert set(torch.nonzero(changed).flatten().tolist()) <= set(idx.tolist())
        row, col = attack.box()
        assert torch.allclose(data.to_pixels(split.images[idx, :, row:row + 3, col:col + 3], "fashion"),
                              pattern.expand(len(idx), -1, -1, -1), atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(before, nets[0].parameters())), "the network is not trained"
    assert all(p.grad is None for p in nets[0].parameters())
    assert log[0]["activation_after"] > log[0]["activation_before"], "the update excites its neuron"


def test_update_trigger_stops_early_and_respects_max_steps():
    _, _, _, attack, _, start = _doorping_case()
    net = models.ConvNet()
    same, info = backdoor.update_trigger(net, start, attack, Doorping(max_steps=0))
    assert torch.equal(same, start) and info["steps"] == 0
    _, info = backdoor.update_trigger(net, start, attack, Doorping(max_steps=3))
    assert info["steps"] <= 3
    _, info = backdoor.update_trigger(net, start, attack, Doorping(stop_loss=1e9))
    assert info["steps"] == 0, "a loss already below stop_loss stops at once"


def test_doorping_runs_inside_condensation_once_per_outer_step():
    from helpers.condensation import condense

    _, poisoned, idx, attack, settings, start = _doorping_case()
    log = []
    hook = backdoor.doorping_hook(poisoned, idx, attack, settings, start, log)
    out = condense(poisoned, 1, method="dc", iterations=2, outer_loop=2, inner_loop=1, batch_real=2,
                   arch_kwargs={"width": 8}, on_outer_step=hook)
    assert [(r["iteration"], r["step"]) for r in log] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert out["images"].shape == (10, 1, 28, 28) and not torch.allclose(log[-1]["pattern"], start)


@pytest.mark.parametrize("bad, found", [(255.0, r"values in \[1, 255\]"), (math.nan, "NaN or inf values"),
                                        (-0.5, r"values in \[-0.5, 1\]")])
def test_trigger_patterns_outside_the_pixel_range_are_refused(bad, found):
    """A 0-255 pattern (or NaN) used to be stamped as is."""
    attack = BadNets(size=3, target=1)
    pattern = torch.ones(1, 3, 3)
    pattern[0, 1, 1] = bad
    message = rf"trigger pattern must hold pixel values in \[0, 1\], found {found}; divide a 0-255 pattern by 255"
    with pytest.raises(ValueError, match=message):
        backdoor.stamp(torch.zeros(2, 1, 28, 28), attack, pattern=pattern)
    split = _split(n=50)
    with pytest.raises(ValueError, match=message):
        backdoor.poison(split, attack, pattern)
    with pytest.raises(ValueError, match=message):
        backdoor.triggered_test(split, attack, pattern)
    with pytest.raises(ValueError, match="trigger pattern must hold floating-point values"):
        backdoor.stamp(torch.zeros(2, 1, 28, 28), attack, pattern=torch.full((1, 3, 3), 255, dtype=torch.uint8))


def test_attack_success_rate_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match=r"predictions \(3\) and true_labels \(4\) must have one entry per image"):
        backdoor.attack_success_rate(torch.tensor([0, 1, 0]), torch.tensor([1, 2, 3, 4]), 0)
    with pytest.raises(ValueError, match=r"predictions must be 1-D"):
        backdoor.attack_success_rate(torch.zeros(4, 10), torch.tensor([1, 2, 3, 4]), 0)


def test_seeds_outside_torch_range_and_targets_outside_the_classes_are_refused():
    for seed in (2 ** 70, -1, True):
        with pytest.raises(ValueError, match=rf"poison seed must be an integer in \[0, 2\*\*64 - 1\], got {seed}"):
            BadNets(seed=seed)
        with pytest.raises(ValueError, match=rf"DOORPING seed must be an integer in \[0, 2\*\*64 - 1\], got {seed}"):
            Doorping(seed=seed)
    with pytest.raises(ValueError, match="not a class"):  # else every image is kept and the ASR is silently 0
        backdoor.triggered_test(_split(n=50), BadNets(target=10))
