"""Notebook 04's study wiring: which networks the distillation study trains under a profile,
each trained on demand and cached on disk, and the table notebook 04 saves. The method itself
(temperature softmax, soft labels, training at a temperature) is `helpers.distillation`."""

from __future__ import annotations

import pandas as pd
from torch import nn

from . import schemas
from .cache import cache_path, load_or_build
from .data import mnist_splits
from .distillation import check_temperature, soft_labels, train_at_temperature
from .profiles import get
from .training import load_model
from .validation import is_int

ROLES = ("undistilled", "teacher", "student")


def settings(profile: str) -> dict:
    """The training settings of `profile`'s distill section, as `train_at_temperature` takes them
    (and as they enter the networks' cache keys)."""
    cfg = get(profile).distill
    return {"n_train": cfg.n_train, "n_val": cfg.n_val, "n_train_eval": cfg.n_train_eval, "n_test": cfg.n_test,
            "lr": cfg.lr, "momentum": cfg.momentum, "nesterov": True, "weight_decay": cfg.weight_decay,
            "batch_size": cfg.batch_size, "dropout": cfg.dropout, "max_epochs": max(cfg.epochs),
            "optimizer": cfg.optimizer}




def _check(profile: str, role: str, temperature: float, epochs: int) -> None:
    cfg = get(profile).distill
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; valid: {', '.join(ROLES)}")
    if role == "undistilled":
        if temperature != 1:
            raise ValueError(f"temperature={temperature!r} is out of range for the undistilled baseline; valid: 1")
    else:
        check_temperature(temperature, "finite numbers > 1 for teachers and students")
        if temperature <= 1:
            raise ValueError(f"temperature={temperature!r} is out of range; valid: finite numbers > 1 for "
                             "teachers and students")
    if not is_int(epochs):  # 2.0 and True would pass for the profile's epoch counts 2 and 1
        raise ValueError(f"epochs={epochs!r} is not an integer; valid: one of the profile's epoch counts {cfg.epochs}")
    if epochs not in cfg.epochs:
        raise ValueError(f"epochs={epochs!r} is not trained in profile {profile!r}; valid: {cfg.epochs}")


def network_key(profile: str, role: str, temperature: float, epochs: int, seed: int = 0) -> dict:
    """What identifies one trained network of the study (and joins the keys of what is built from
    it, e.g. attacks): its training settings, seed, temperature, role and epoch count."""
    return {"settings": settings(profile), "seed": seed, "temperature": float(temperature), "role": role,
            "epochs": epochs}


def _run_key(profile: str, role: str, temperature: float, epochs: int, seed: int) -> dict:
    """Cache key of one training run: baseline and teachers are one run per temperature (checkpointed
    at every epoch count, so their key has no epochs), students one run per epoch count."""
    key = network_key(profile, role, temperature, epochs, seed)
    return key if role == "student" else {k: v for k, v in key.items() if k != "epochs"}


def is_trained(profile: str, role: str, temperature: float, epochs: int, seed: int = 0) -> bool:
    """Whether `trained(...)` would load the network from the cache rather than train it."""
    _check(profile, role, temperature, epochs)
    return cache_path("distill-net", _run_key(profile, role, temperature, epochs, seed)).exists()


def trained(profile: str, role: str, temperature: float, epochs: int, seed: int = 0) -> dict:
    """One trained network of the study, built on demand and cached on disk.

    role "undistilled" (temperature must be 1), "teacher" or "student" at `temperature` (> 1);
    `epochs` must be one of the profile's epoch counts. Returns {"role", "temperature",
    "epochs", "history" (per-epoch train/val accuracy and loss at the training temperature;
    for a longer teacher/baseline run, its first `epochs` records), "state_dict",
    "test_acc", "mean_abs_logit", "mean_l1_logits", "mean_logit_range"}.
    """
    _check(profile, role, temperature, epochs)
    cfg = get(profile).distill
    s = settings(profile)
    splits = mnist_splits(s["n_train"], s["n_val"], seed, s["n_test"])

    def run_hard(role_: str) -> dict:  # baseline or teacher: one run, checkpointed at every epoch count
        return load_or_build("distill-net", _run_key(profile, role_, temperature, epochs, seed),
                             lambda: train_at_temperature(splits, splits["train"][1], temperature, s["max_epochs"],
                                                          list(cfg.epochs), s, seed, f"{role_} T={temperature:g}"),
                             validate=schemas.distill_net(s["dropout"], list(cfg.epochs)))

    if role in ("undistilled", "teacher"):
        run = run_hard(role)
        history = {"step_loss": [], "epochs": run["history"]["epochs"][:epochs]}
    else:
        def build_student() -> dict:
            teacher = load_model("mnistnet", run_hard("teacher")["states"][str(epochs)], {"dropout": s["dropout"]})
            targets = soft_labels(teacher, splits["train"][0], temperature)
            return train_at_temperature(splits, targets, temperature, epochs, [epochs], s, seed,
                                        f"student T={temperature:g} ({epochs} ep)")

        run = load_or_build("distill-net", _run_key(profile, role, temperature, epochs, seed), build_student,
                            validate=schemas.distill_net(s["dropout"], [epochs]))
        history = run["history"]
    return {"role": role, "temperature": float(temperature), "epochs": epochs, "history": history,
            "state_dict": run["states"][str(epochs)], **run["summaries"][str(epochs)]}


def network(profile: str, role: str, temperature: float, epochs: int, seed: int = 0) -> nn.Module:
    """The deployed (T = 1) pixel-space network of `trained(...)`, in eval mode."""
    record = trained(profile, role, temperature, epochs, seed)
    return load_model("mnistnet", record["state_dict"], {"dropout": get(profile).distill.dropout})


def model_specs(profile: str) -> list[tuple[str, str, float]]:
    """(name, role, temperature) of every network of the study: the undistilled baseline,
    then teacher and student at each of the profile's temperatures."""
    specs = [("undistilled", "undistilled", 1.0)]
    for t in get(profile).distill.temperatures:
        specs += [(f"teacher T={t:g}", "teacher", float(t)), (f"student T={t:g}", "student", float(t))]
    return specs


def table(profile: str, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Every network of the study at every epoch count, trained on demand: a tidy table (model,
    role, temperature, epochs, test and final validation accuracy, logit magnitudes, n_train,
    seed) and the records of `trained` keyed by (model, epochs) for the learning curves."""
    cfg = get(profile).distill
    records = {(name, e): trained(profile, role, t, e, seed)
               for e in cfg.epochs for name, role, t in model_specs(profile)}
    rows = [{"model": name, "role": r["role"], "temperature": r["temperature"], "epochs": e, "test_acc": r["test_acc"],
             "val_acc": r["history"]["epochs"][-1]["val_acc"], "mean_abs_logit": r["mean_abs_logit"],
             "mean_l1_logits": r["mean_l1_logits"], "mean_logit_range": r["mean_logit_range"],
             "n_train": cfg.n_train, "seed": seed} for (name, e), r in records.items()]
    return pd.DataFrame(rows), records


# --- the README's block and abstract line of this study ------------------------------------------


def readme_block(df: pd.DataFrame) -> str:
    """The README's distillation table from `results/distillation.csv` (notebook 04's rows)."""
    acc = df.pivot_table(index="model", columns="epochs", values="test_acc", sort=False)
    logits = df[df.epochs == df.epochs.max()].set_index("model").mean_l1_logits
    rows = ["| model | " + " | ".join(f"test acc., {e} epochs (%)" for e in acc.columns)
            + " | mean L1 logit norm |", "|---|" + "---:|" * (len(acc.columns) + 1)]
    rows += [f"| {model} | " + " | ".join(f"{100 * a:.2f}" for a in accs) + f" | {logits[model]:.0f} |"
             for model, accs in acc.iterrows()]
    rows.append(f"\n{df.n_train.iloc[0]} MNIST training images, {df.seed.nunique()} seed(s) per model, "
                "from `results/distillation.csv`.")
    return "\n".join(rows)
