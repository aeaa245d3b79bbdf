"""How much does each modality contribute, and how good is each encoder? Three views of uni-modal accuracy,
the exact two-modality Shapley contribution, and linear probes on frozen encoders (the modality-failure and
under-optimisation diagnostic of Du et al. and Peng et al.)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from avlab.models.classifier import MODALITIES
from avlab.evaluation import evaluate, predict


@torch.no_grad()
def features(model, data: Dataset, modality: str, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen encoder features (eval mode) and labels over a dataset: ((N, D), (N,))."""
    was_training = model.training
    model.eval()
    encoder, device = model.encoder(modality), next(model.parameters()).device
    feats, labels = [], []
    for batch in DataLoader(data, batch_size, shuffle=False):
        feats.append(encoder(batch[modality].to(device)).float().cpu())
        labels.append(batch["label"])
    model.train(was_training)
    return torch.cat(feats), torch.cat(labels)


def fit_linear_probe(x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float = 1e-3,
                     steps: int = 200) -> torch.nn.Linear:
    """Multinomial logistic regression on standardised features, full-batch L-BFGS: deterministic and fast."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    probe = torch.nn.Linear(x.shape[1], num_classes)
    torch.nn.init.zeros_(probe.weight), torch.nn.init.zeros_(probe.bias)
    xs = (x - mean) / std
    optimizer = torch.optim.LBFGS(probe.parameters(), lr=1, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(probe(xs), y) + l2 * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    probe.mean, probe.std = mean, std  # the probe standardises its input the same way at test time
    return probe


def linear_probe(model, train: Dataset, test: Dataset, modality: str, num_classes: int | None = None,
                 l2: float = 1e-3) -> float:
    """Test accuracy of a linear probe trained on the frozen `modality` encoder's training-set features."""
    num_classes = num_classes or getattr(train, "num_classes", None) or model.num_classes
    x_train, y_train = features(model, train, modality)
    x_test, y_test = features(model, test, modality)
    with torch.enable_grad():
        probe = fit_linear_probe(x_train, y_train, num_classes, l2)
    with torch.no_grad():
        pred = probe((x_test - probe.mean) / probe.std).argmax(1)
    return (pred == y_test).float().mean().item()


def zeroed_accuracy(model, data: Dataset, modality: str) -> float:
    """Fused accuracy with only `modality` given: the other enters the fusion as zeros."""
    p = predict(model, data, (modality,))
    return (p["logits"].argmax(1) == p["label"]).float().mean().item()


def uni_modal_accuracy(model, train: Dataset, test: Dataset, modalities=MODALITIES) -> dict:
    """Each modality's accuracy on `test` three ways: `head` (the model's uni-modal head), `zeroed` (the fused
    output with the other modality zeroed) and `probe` (a linear probe on the frozen encoder)."""
    heads = evaluate(model, test)
    return {m: {"head": heads[f"acc_{m}"], "zeroed": zeroed_accuracy(model, test, m),
                "probe": linear_probe(model, train, test, m)} for m in modalities}


@torch.no_grad()
def shapley(model, data: Dataset) -> dict:
    """Exact Shapley contribution of each modality to the fused accuracy on `data`.

    With two players the value of a coalition S is the accuracy with only S present (absent modalities
    zeroed, the empty coalition scoring the constant prediction of zeros), and
        phi_audio = 1/2 [(v(a) - v(0)) + (v(av) - v(v))],  phi_visual likewise;
    phi_audio + phi_visual = v(av) - v(0) exactly.
    """
    both = evaluate(model, data)["acc"]
    alone = {m: zeroed_accuracy(model, data, m) for m in MODALITIES}
    labels = torch.cat([b["label"] for b in DataLoader(data, 1024)])
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    empty_logits = model.fusion(torch.zeros(1, model.audio.out_dim, device=device),
                                torch.zeros(1, model.visual.out_dim, device=device))
    model.train(was_training)
    empty = (labels == empty_logits.argmax(1).cpu()).float().mean().item()
    return {"audio": 0.5 * ((alone["audio"] - empty) + (both - alone["visual"])),
            "visual": 0.5 * ((alone["visual"] - empty) + (both - alone["audio"])),
            "v_both": both, "v_audio": alone["audio"], "v_visual": alone["visual"], "v_empty": empty}
