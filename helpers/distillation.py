"""Defensive distillation (Papernot et al., IEEE S&P 2016) with the MNIST network of
Papernot et al. / Carlini & Wagner (`models.MnistNet`), trained on pixel-space inputs in [0, 1].

Protocol (Papernot et al. 2016, Sec. IV-B; Carlini & Wagner's released `train_models.py`):
  * temperature softmax  F_T(x)_i = exp(Z_i(x) / T) / sum_j exp(Z_j(x) / T)  (their Eq. 1);
  * teacher: trained with F_T on the hard labels;
  * soft labels: F_T(teacher) on the training set;
  * student: the same network trained with F_T on those soft labels (cross-entropy with
    probability targets);
  * both are deployed at T = 1 (the logits Z are used as they are); the undistilled baseline
    is the same network trained at T = 1.
Training is C&W's (with Keras's Glorot initialisation, `keras_init`): SGD lr 0.01, momentum
0.9, Nesterov, batch 128 (`paper` profile; see below for `default`), constant learning rate
(their Keras decay of 1e-6 per step changes the rate by < 3 % and is left out), so the epoch-E
checkpoint of a longer run *is* an E-epoch run: baseline and teachers are trained once for the
largest epoch count and checkpointed; each student is trained from scratch for E epochs on the
soft labels of the E-epoch teacher.

Optimiser (`optimizer` in the profile): the gradient of CE(softmax(Z / T)) w.r.t. Z is
(p - y) / T, so with SGD at lr 0.01 a T = 100 network effectively trains at lr 1e-4. Measured
here (3k images, batch 128): SGD stays at chance after 94 steps at T = 100 (and with lr x T it
is unstable), while C&W's 50 epochs on 60k images are ~23k steps and a CPU budget allows ~1k.
Adam is invariant to that 1/T scale (T = 100 teacher: 49 % after 24 steps), so the `default`
profile trains every network, the baseline included, with Adam (lr 1e-3, batch 128); `paper`
uses C&W's SGD.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import data, models
from .cache import load_or_build
from .config import seed_everything
from .profiles import budget
from .training import fit, load_model, predict

ROLES = ("undistilled", "teacher", "student")


def softmax_t(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Papernot et al. Eq. (1): softmax(Z / T) over the last dimension."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return F.softmax(logits / temperature, dim=-1)


class Tempered(nn.Module):
    """Training-time wrapper: returns Z(x) / T, so cross-entropy on its output is the
    cross-entropy of softmax(Z / T) (soft targets work too: `F.cross_entropy` accepts
    class probabilities). The deployed model is the wrapped `net` itself (T = 1)."""

    def __init__(self, net: nn.Module, temperature: float):
        super().__init__()
        self.net, self.temperature = net, float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) / self.temperature


@torch.no_grad()
def soft_labels(model: nn.Module, images: torch.Tensor, temperature: float) -> torch.Tensor:
    """The student's training targets: softmax(Z_teacher(x) / T), rows summing to 1."""
    return softmax_t(predict(model, images).double(), temperature).float()


def mnist_splits(n_train: int, n_val: int, seed: int = 0,
                 n_test: int | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Pixel-space MNIST: a stratified training subset of `n_train`, a disjoint stratified
    validation subset of `n_val` from the rest of the training split, and the test set (the first
    `n_test` images; None: all 10,000).
    Returns {"train", "val", "test"} -> (images in [0, 1] (N, 1, 28, 28), labels)."""
    full = data.load("mnist", True)
    index = data.Split("mnist", torch.arange(len(full)), full.labels, full.classes)  # subsets of indices
    train_idx = data.stratified_subset(index, n_train, seed).images
    rest = torch.ones(len(full), dtype=torch.bool)
    rest[train_idx] = False
    val_idx = data.stratified_subset(index.subset(torch.nonzero(rest).flatten()), n_val, seed).images
    pixels = full.pixels()
    test = data.load("mnist", False)
    return {"train": (pixels[train_idx], full.labels[train_idx]), "val": (pixels[val_idx], full.labels[val_idx]),
            "test": (test.pixels()[:n_test], test.labels[:n_test])}


def keras_init(net: nn.Module) -> nn.Module:
    """Glorot-uniform weights and zero biases (Keras's defaults, hence C&W's and Papernot's
    networks). PyTorch's default init leaves this 9-layer net on a long initial plateau at
    lr 0.01 (measured: chance accuracy after 100 steps), Glorot starts learning at once."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return net


def _settings(profile: str) -> dict:
    cfg = budget(profile, "distill")
    return {"n_train": cfg.n_train, "n_val": cfg.n_val, "n_train_eval": cfg.n_train_eval, "n_test": cfg.n_test,
            "lr": cfg.lr, "momentum": cfg.momentum, "nesterov": True, "weight_decay": cfg.weight_decay,
            "batch_size": cfg.batch_size, "dropout": cfg.dropout, "max_epochs": max(cfg.epochs),
            "optimizer": cfg.optimizer}


def _train(splits: dict, targets: torch.Tensor, temperature: float, epochs: int, keep: list[int],
           s: dict, seed: int, desc: str) -> dict:
    """Train a fresh MnistNet at `temperature` on (train images, targets); keep the
    state_dicts after the epochs in `keep`. History evaluates train (a fixed subset, hard
    labels) and validation accuracy and loss at the training temperature every epoch."""
    seed_everything(seed)
    net = keras_init(models.MnistNet(dropout=s["dropout"]))
    x, y = splits["train"]
    states: dict[str, dict] = {}
    summaries: dict[str, dict] = {}

    def checkpoint(epoch: int, model: nn.Module) -> None:
        if epoch in keep:
            states[str(epoch)] = {k: v.detach().cpu().clone() for k, v in model.net.state_dict().items()}
            summaries[str(epoch)] = _summary(model.net, splits)

    history = fit(Tempered(net, temperature), x, targets, epochs=epochs, lr=s["lr"], momentum=s["momentum"],
                  weight_decay=s["weight_decay"], nesterov=True, batch_size=s["batch_size"], decay_at=(),
                  seed=seed, eval_sets={"train": (x[:s["n_train_eval"]], y[:s["n_train_eval"]]),
                                        "val": splits["val"]}, eval_every=1, desc=desc, on_epoch=checkpoint,
                  optimizer=s["optimizer"])
    return {"history": history, "states": states, "summaries": summaries}


def _summary(net: nn.Module, splits: dict) -> dict:
    """Test accuracy at T = 1 and the logit magnitudes on the test set."""
    x, y = splits["test"]
    logits = predict(net, x)
    return {"test_acc": (logits.argmax(1) == y).float().mean().item(),
            "mean_abs_logit": logits.abs().mean().item(), "mean_l1_logits": logits.abs().sum(1).mean().item(),
            "mean_logit_range": (logits.amax(1) - logits.amin(1)).mean().item()}


def trained(profile: str, role: str, temperature: float, epochs: int, seed: int = 0) -> dict:
    """One trained network of the study, built on demand and cached on disk.

    role "undistilled" (temperature must be 1), "teacher" or "student" at `temperature`;
    `epochs` must be one of the profile's epoch counts. Returns {"role", "temperature",
    "epochs", "history" (per-epoch train/val accuracy and loss at the training temperature;
    for a longer teacher/baseline run, its first `epochs` records), "state_dict",
    "test_acc", "mean_abs_logit", "mean_l1_logits", "mean_logit_range"}.
    """
    cfg = budget(profile, "distill")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; valid: {', '.join(ROLES)}")
    if (role == "undistilled") != (temperature == 1):
        raise ValueError("the undistilled baseline has temperature 1, teachers and students a temperature > 1")
    if epochs not in cfg.epochs:
        raise ValueError(f"epochs {epochs} is not trained in profile {profile!r}; valid: {cfg.epochs}")
    s = _settings(profile)
    splits = mnist_splits(s["n_train"], s["n_val"], seed, s["n_test"])
    base = {"settings": s, "seed": seed, "temperature": float(temperature)}

    def run_hard(role_: str) -> dict:  # baseline or teacher: one run, checkpointed at every epoch count
        return load_or_build("distill-net", {**base, "role": role_},
                             lambda: _train(splits, splits["train"][1], temperature, s["max_epochs"],
                                            list(cfg.epochs), s, seed, f"{role_} T={temperature:g}"))

    if role in ("undistilled", "teacher"):
        run = run_hard(role)
        history = {"step_loss": [], "epochs": run["history"]["epochs"][:epochs]}
    else:
        def build_student() -> dict:
            teacher = load_model("mnistnet", run_hard("teacher")["states"][str(epochs)],
                                 {"dropout": s["dropout"]})
            targets = soft_labels(teacher, splits["train"][0], temperature)
            return _train(splits, targets, temperature, epochs, [epochs], s, seed,
                          f"student T={temperature:g} ({epochs} ep)")

        run = load_or_build("distill-net", {**base, "role": "student", "epochs": epochs}, build_student)
        history = run["history"]
    return {"role": role, "temperature": float(temperature), "epochs": epochs, "history": history,
            "state_dict": run["states"][str(epochs)], **run["summaries"][str(epochs)]}


def network(profile: str, role: str, temperature: float, epochs: int, seed: int = 0) -> nn.Module:
    """The deployed (T = 1) pixel-space network of `trained(...)`, in eval mode."""
    record = trained(profile, role, temperature, epochs, seed)
    return load_model("mnistnet", record["state_dict"], {"dropout": budget(profile, "distill").dropout})


def model_specs(profile: str) -> list[tuple[str, str, float]]:
    """(name, role, temperature) of every network of the study: the undistilled baseline,
    then teacher and student at each of the profile's temperatures."""
    specs = [("undistilled", "undistilled", 1.0)]
    for t in budget(profile, "distill").temperatures:
        specs += [(f"teacher T={t:g}", "teacher", float(t)), (f"student T={t:g}", "student", float(t))]
    return specs
