"""The adapted head: multinomial logistic regression on frozen utterance embeddings.

    weight, bias = fit_linear(X, y, classes=3)      # X (N, D) float, y (N,) class indices
    probs = predict(weight, bias, X_eval)

The emotion2vec paper's linear probe, as scikit-learn's LogisticRegression would fit it (L2
penalty, balanced class weights), in PyTorch: features are standardised with the training set's
mean and spread, the loss (class-weighted cross-entropy plus l2 * |W|^2 / 2N) is minimised by
L-BFGS from zero, and the standardisation is folded back into the weights, so the result is a
plain Linear layer on the raw mean-of-frames embedding: the released head's shape and place.
Deterministic: same data, same head.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

L2 = 1.0  # the penalty's weight, as 1/C of scikit-learn's LogisticRegression (same default)
MAX_ITER = 500
MIN_SPREAD = 1e-6  # features that do not vary are left unscaled


def class_weights(y: np.ndarray, classes: int) -> torch.Tensor:
    """Balanced weights n / (classes * n_c): every class counts alike, however many examples."""
    counts = np.bincount(y, minlength=classes).astype(np.float64)
    return torch.tensor(len(y) / (classes * np.maximum(counts, 1)), dtype=torch.float64)


def fit_linear(x: np.ndarray, y: np.ndarray, classes: int, l2: float = L2,
               max_iter: int = MAX_ITER) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight (C, D), bias (C,)) float32 of the logistic head for embeddings `x` and labels `y`."""
    torch.manual_seed(0)
    xt = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.long)
    mean = xt.mean(dim=0)
    spread = xt.std(dim=0, unbiased=False)
    spread = torch.where(spread > MIN_SPREAD, spread, torch.ones_like(spread))
    z = (xt - mean) / spread
    weights = class_weights(np.asarray(y), classes)
    w = torch.zeros(classes, xt.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-7,
                            tolerance_change=1e-10, history_size=20, line_search_fn="strong_wolfe")
    penalty = l2 / (2 * len(yt))

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z @ w.T + b, yt, weight=weights) + penalty * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        weight = w / spread  # logits = w (x - mean) / spread + b
        bias = b - weight @ mean
    return weight.float(), bias.float()


def predict(weight: torch.Tensor, bias: torch.Tensor, x: np.ndarray) -> np.ndarray:
    """Class probabilities (N, C) of the head for embeddings (N, D)."""
    with torch.no_grad():
        logits = torch.as_tensor(np.asarray(x), dtype=torch.float32) @ weight.T + bias
        return torch.softmax(logits, dim=-1).numpy()
