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

The optimiser is a setting (`optimizer`): "sgd" is C&W's, "adam" trains every network with Adam,
whose steps do not shrink with the 1/T scale of the gradient at temperature T (notebook 04
gives the measurements behind the choice).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import data, models
from .config import seed_everything
from .training import fit, predict
from .validation import require

MNIST_TEST = 10000
STRATIFIED_MAX = 54210  # ten times the training images of MNIST's smallest class (5: 5421)




def check_temperature(temperature: float, valid: str = "finite numbers > 0") -> None:
    """ValueError naming the temperature unless it is a finite positive number."""
    ok = isinstance(temperature, int | float) and math.isfinite(temperature) and temperature > 0
    require("temperature", temperature, ok, valid)


def softmax_t(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Papernot et al. Eq. (1): softmax(Z / T) over the last dimension."""
    check_temperature(temperature)
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
    for name, value in (("n_train", n_train), ("n_val", n_val)):
        require(name, value, isinstance(value, int) and value >= 10 and value % 10 == 0,
                 "positive multiples of 10 (stratified: the same count per class)")
    require("n_train + n_val", n_train + n_val, n_train + n_val <= STRATIFIED_MAX,
             f"at most {STRATIFIED_MAX} (MNIST's smallest class has {STRATIFIED_MAX // 10} training images)")
    require("n_test", n_test, n_test is None or (isinstance(n_test, int) and 1 <= n_test <= MNIST_TEST),
             f"None (all) or integers from 1 to {MNIST_TEST}")
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
    networks); with PyTorch's default init this net starts on a long plateau at lr 0.01
    (notebook 04)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return net


def train_at_temperature(splits: dict, targets: torch.Tensor, temperature: float, epochs: int, keep: list[int],
                         s: dict, seed: int, desc: str) -> dict:
    """Train a fresh MnistNet (Glorot init) at `temperature` on (train images, `targets`: hard labels
    or soft labels), i.e. cross-entropy of softmax(Z / T). `s` holds the training settings (lr,
    momentum, weight_decay, batch_size, dropout, optimizer, n_train_eval). Keeps the state_dicts
    after the epochs in `keep`; the history scores training (a fixed subset, hard labels) and
    validation accuracy and loss at the training temperature every epoch. Returns {"history",
    "states": {str(epoch): state_dict}, "summaries": {str(epoch): `logit_summary`}}."""
    check_temperature(temperature)
    seed_everything(seed)
    net = keras_init(models.MnistNet(dropout=s["dropout"]))
    x, y = splits["train"]
    states: dict[str, dict] = {}
    summaries: dict[str, dict] = {}

    def checkpoint(epoch: int, model: nn.Module) -> None:
        if epoch in keep:
            states[str(epoch)] = {k: v.detach().cpu().clone() for k, v in model.net.state_dict().items()}
            summaries[str(epoch)] = logit_summary(model.net, splits["test"])

    history = fit(Tempered(net, temperature), x, targets, epochs=epochs, lr=s["lr"], momentum=s["momentum"],
                  weight_decay=s["weight_decay"], nesterov=True, batch_size=s["batch_size"], decay_at=(),
                  seed=seed, eval_sets={"train": (x[:s["n_train_eval"]], y[:s["n_train_eval"]]),
                                        "val": splits["val"]}, eval_every=1, desc=desc, on_epoch=checkpoint,
                  optimizer=s["optimizer"])
    return {"history": history, "states": states, "summaries": summaries}


def logit_summary(net: nn.Module, test: tuple[torch.Tensor, torch.Tensor]) -> dict:
    """Test accuracy at T = 1 and the logit magnitudes on the test set (images, labels)."""
    x, y = test
    logits = predict(net, x)
    return {"test_acc": (logits.argmax(1) == y).float().mean().item(),
            "mean_abs_logit": logits.abs().mean().item(), "mean_l1_logits": logits.abs().sum(1).mean().item(),
            "mean_logit_range": (logits.amax(1) - logits.amin(1)).mean().item()}
