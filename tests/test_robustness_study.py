"""Notebook 03's study wiring: the robustness verdict's rule and thresholds, the per-model
statistics it is fed, the accuracy-matched early stop, the validation split, and the tidy
attack table the README reads."""

import math

import pandas as pd
import pytest
import torch

from helpers import attacks, models, robustness_study, training
from helpers.profiles import get


@pytest.mark.parametrize("success, std, baseline, baseline_std, expected", [
    (0.50, 0.02, 0.60, 0.02, "more robust"),  # 10 points apart, noise hypot(2, 2) = 2.8 points
    (0.70, 0.02, 0.60, 0.02, "less robust"),
    (0.50, 0.08, 0.60, 0.08, "indistinguishable"),  # 10 points < hypot(8, 8) = 11.3 points
    (0.600, 0.0, 0.605, 0.0, "indistinguishable"),  # no noise, but below MIN_DIFFERENCE
    (0.600, 0.0, 0.589, 0.0, "less robust"),  # 1.1 points > MIN_DIFFERENCE, no noise
])
def test_verdict_rule(success, std, baseline, baseline_std, expected):
    assert robustness_study.verdict(success, std, baseline, baseline_std) == expected


def test_verdict_thresholds_are_the_named_constants(monkeypatch):
    # 3 points apart with a combined std of hypot(2, 2) = 2.83 points: just beyond one std
    assert robustness_study.verdict(0.57, 0.02, 0.60, 0.02) == "more robust"
    monkeypatch.setattr(robustness_study, "NOISE_MULTIPLE", 1.1)  # 3.11 points needed now
    assert robustness_study.verdict(0.57, 0.02, 0.60, 0.02) == "indistinguishable"
    monkeypatch.setattr(robustness_study, "NOISE_MULTIPLE", 1.0)
    monkeypatch.setattr(robustness_study, "MIN_DIFFERENCE", 0.05)
    assert robustness_study.verdict(0.57, 0.02, 0.60, 0.02) == "indistinguishable"


@pytest.mark.parametrize("values", [(float("nan"), 0.0, 0.5, 0.0), (0.5, -0.1, 0.5, 0.0), (0.5, 0.0, math.inf, 0.0)])
def test_verdict_refuses_bad_numbers(values):
    with pytest.raises(ValueError, match="success rates and stds must be finite numbers >= 0"):
        robustness_study.verdict(*values)


def _results(successes: dict[tuple[str, int], list[float]], eps: float = 0.1) -> pd.DataFrame:
    """A results table as `attack_models` writes it: LeNet, PGD, one row per model at eps 0 and `eps`."""
    rows = []
    for (condition, ipc), rates in successes.items():
        for seed, rate in enumerate(rates):
            for e, s in ((0.0, 0.0), (eps, rate)):
                rows.append({"arch": "LeNet", "condition": condition, "ipc": ipc, "label": f"{condition} {ipc}",
                             "train_images": 100, "steps": 10, "test_images": 1000, "seed": seed, "attack": "pgd",
                             "eps": e, "accuracy": 0.7 * (1 - s), "success_rate": s, "clean_accuracy": 0.7,
                             "n": 1000, "n_correct": 700})
    return pd.DataFrame(rows)


def test_verdicts_compare_condensed_with_each_baseline_per_model():
    results = _results({("original", 0): [0.80, 0.84], ("condensed", 10): [0.60, 0.64],
                        ("random subset", 10): [0.62, 0.66], ("accuracy-matched", 10): [0.60, 0.90]})
    table = robustness_study.verdicts(results).set_index("baseline")
    assert list(table.index) == ["original", "random subset", "accuracy-matched"]
    assert table.loc["original", "success"] == pytest.approx(0.62)
    assert table.loc["original", "success_std"] == pytest.approx(0.02 * math.sqrt(2))  # sample std of 2 models
    assert table.loc["original", "baseline_success"] == pytest.approx(0.82)
    assert table.loc["original", "difference"] == pytest.approx(-0.20)
    assert table.loc["original", "n"] == 2
    assert table.verdict.to_dict() == {"original": "more robust", "random subset": "indistinguishable",
                                       "accuracy-matched": "indistinguishable"}  # 13 points < hypot(2.8, 21.2)
    first = robustness_study.describe_verdicts(table.reset_index())[0]
    assert first.startswith("LeNet, PGD at eps 0.1, ipc 10: condensed is MORE ROBUST than original")
    assert "62.0 ± 2.8 % vs 82.0 ± 2.8 %" in first


def test_verdicts_without_a_baseline_or_at_an_unattacked_eps():
    results = _results({("original", 0): [0.8], ("condensed", 10): [0.6]})
    assert list(robustness_study.verdicts(results).baseline) == ["original"]
    with pytest.raises(ValueError, match=r"eps must be one of the attacked budgets \[0.0, 0.1\], got 0.2"):
        robustness_study.verdicts(results, eps=0.2)
    with pytest.raises(ValueError, match="eps must be a finite number in"):
        robustness_study.verdicts(results, eps=float("nan"))


def test_report_sentence_follows_the_verdict():
    results = _results({("original", 0): [0.80, 0.84], ("condensed", 10): [0.60, 0.64],
                        ("random subset", 10): [0.70, 0.72], ("accuracy-matched", 10): [0.61, 0.63]})
    text = robustness_study.abstract_line(results)
    assert "less easily attacked than whole-data and random-subset ones" in text
    assert "62.0 %" in text and "82.0 %" in text and "71.0 %" in text
    assert "goes away, so it comes with the lower accuracy" in text  # matched: indistinguishable
    without = robustness_study.abstract_line(results[results.condition != "accuracy-matched"])
    assert "accuracy-matched" not in without and "stopped at" not in without


def test_summarize_means_and_stds_over_models():
    results = _results({("condensed", 10): [0.6, 0.7, 0.8]})
    summary = robustness_study.summarize(results)
    row = summary[summary.eps == 0.1].iloc[0]
    assert row.success == pytest.approx(0.7) and row.success_std == pytest.approx(0.1) and row.models == 3
    assert row.acc == pytest.approx(0.7 * 0.3)
    cell = robustness_study.accuracy_table(summary).loc[("pgd", "condensed 10"), 0.1]
    assert cell == "21.0 ± 7.0"


def test_attack_models_writes_the_columns_the_report_reads():
    torch.manual_seed(0)
    runs = [{"seed": s, "state_dict": models.LeNet().state_dict(), "test_acc": 0.1} for s in (0, 1)]
    trained = {("LeNet", "condensed", 10): robustness_study.Trained("LeNet", "condensed", 10, "condensed ipc 10 (DM)",
                                                              100, runs)}
    results = robustness_study.attack_models(trained, "smoke", seed=0)
    cfg = get("smoke").robustness
    assert len(results) == 2 * 2 * len(cfg.eps)  # models x attacks x eps
    assert {"arch", "attack", "label", "steps", "test_images", "eps", "accuracy", "success_rate", "condition",
            "ipc", "seed", "clean_accuracy"} <= set(results.columns)
    pgd = results[results.attack == "pgd"]
    assert set(pgd.test_images) == {cfg.pgd_images} and set(pgd.steps) == {cfg.pgd_steps}
    # FGSM rows are attacks.evaluate_attack's own numbers on the same images
    x, y = robustness_study.attack_set(cfg.fgsm_images)
    net = models.Normalized(training.load_model("lenet", runs[1]["state_dict"]), 0.2861, 0.3530)
    direct = attacks.evaluate_attack(net, x, y, cfg.eps)["records"]
    mine = results[(results.attack == "fgsm") & (results.seed == 1)]
    assert mine.accuracy.tolist() == pytest.approx([r["accuracy"] for r in direct])
