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

import torch
import torch.nn.functional as F
from torch import nn

from . import engine, models
from .runtime import seed_everything
from .training import fit, predict
from .validation import NUMPY_SEEDS, check_finite, is_int, is_number, require, seed_ok, seed_range

# The smallest temperature: Z / T stays finite for float32 logits up to 3e35 in magnitude, and
# at T = 1e-3 softmax(Z / T) is one-hot up to e^-100 for logit gaps above 0.1 (the study's
# temperatures are 1 to 100); smaller T (1e-300) overflows Z / T to inf and softmax to NaN.
MIN_TEMPERATURE = 1e-3


def check_temperature(temperature: float, valid: str = f"finite numbers >= {MIN_TEMPERATURE:g}") -> None:
    """ValueError naming the temperature unless it is a finite number >= MIN_TEMPERATURE
    (smaller ones make Z / T overflow to inf and softmax NaN)."""
    ok = is_number(temperature) and temperature >= MIN_TEMPERATURE
    require("temperature", temperature, ok, valid)


def softmax_t(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Papernot et al. Eq. (1): softmax(Z / T) over the last dimension."""
    check_temperature(temperature)
    check_finite("logits", logits, "the network's outputs are broken (NaN or inf)")
    scaled = logits / temperature
    check_finite(f"logits / temperature (T={temperature!r})", scaled, "raise the temperature")
    return F.softmax(scaled, dim=-1)


@engine.declare
class Tempered(nn.Module):
    """Training-time wrapper: returns Z(x) / T, so cross-entropy on its output is the
    cross-entropy of softmax(Z / T) (soft targets work too: `F.cross_entropy` accepts
    class probabilities). The deployed model is the wrapped `net` itself (T = 1)."""

    # Training (and its per-epoch curves) under bf16 autocast measured 1.9x eager fp32
    # (bench_condensation.py); the bare network keeps FAST_PATH = (), so soft labels, logit
    # summaries, test accuracies and the attacks run in fp32.
    FAST_PATH = ("bf16",)

    def __init__(self, net: nn.Module, temperature: float):
        check_temperature(temperature)
        super().__init__()
        self.net, self.temperature = net, float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) / self.temperature


@torch.no_grad()
def soft_labels(model: nn.Module, images: torch.Tensor, temperature: float) -> torch.Tensor:
    """The student's training targets: softmax(Z_teacher(x) / T), rows summing to 1."""
    return softmax_t(predict(model, images).double(), temperature).float()




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
    # seed_everything also seeds numpy, which takes only [0, 2**32)
    require("seed", seed, seed_ok(seed, NUMPY_SEEDS), seed_range(NUMPY_SEEDS))
    require("epochs", epochs, is_int(epochs) and epochs >= 1, "an integer >= 1")
    require("keep", keep, all(is_int(e) and 1 <= e <= epochs for e in keep), f"epoch counts from 1 to {epochs}")
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
