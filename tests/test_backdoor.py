"""BadNets poisoning, trigger stamping and the backdoor metrics."""

import pytest
import torch

from helpers import backdoor, data, models
from helpers.backdoor import BadNets
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
    with pytest.raises(ValueError, match="rate"):
        BadNets(rate=1.5)
    with pytest.raises(ValueError, match="does not fit"):
        backdoor.stamp(torch.zeros(1, 1, 28, 28), BadNets(size=28, margin=1))


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


def test_verdict_thresholds():
    assert backdoor.verdict(0.95, 1.0, 0.0) == "keeps"
    assert backdoor.verdict(0.40, 1.0, 0.0) == "weakens"
    assert backdoor.verdict(0.12, 1.0, 0.10) == "removes"
    assert backdoor.verdict(0.50, 0.03, 0.0) == "undetermined"  # the reference has no backdoor


def test_trigger_brightness_sees_the_patch():
    attack = BadNets()
    clean = data.normalize(torch.full((3, 1, 28, 28), 0.2), "fashion")
    stamped = backdoor.stamp(clean, attack, "fashion")
    assert torch.allclose(backdoor.trigger_brightness(clean, attack), torch.zeros(3), atol=1e-6)
    expected = 1.0 - (0.2 * (784 - 9) + 9) / 784
    assert torch.allclose(backdoor.trigger_brightness(stamped, attack), torch.full((3,), expected), atol=1e-5)


def test_poisoned_data_tag_names_clean_data_and_attack():
    split = _split(n=100)
    poisoned, idx, tag = backdoor.poisoned_data(split, {"dataset": "fashion", "split": "train"}, BadNets(rate=0.1))
    assert len(idx) == 10 and tag["poison"]["rate"] == 0.1 and tag["split"] == "train"
