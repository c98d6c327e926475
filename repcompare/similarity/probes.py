"""How well a layer's features predict the labels: kNN and linear-probe accuracy.

Both are measured on a fixed, seeded, stratified train/test split of the
examples (``stratified_split``):

- kNN (cosine, k neighbours): each test example takes the majority label of
  its k most cosine-similar training examples; ties go to the label whose
  neighbours are more similar in total.
- Linear probe: multinomial logistic regression on the features standardised
  with the training mean and standard deviation, minimising
  ``mean cross-entropy + l2 / 2 * ||W||^2`` with full-batch L-BFGS from zero,
  so the fit is deterministic.
"""

from __future__ import annotations

import numpy as np
import torch

from repcompare.similarity.checks import BatchShapeError

KNN_CHUNK = 1024
TIE_BREAK = 1e-3
PROBE_ITERATIONS = 300


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): ``test_fraction`` of each class (rounded, at least one and at most
    all but one when the class has two or more examples) drawn under ``seed``; both sorted."""
    if not 0 < test_fraction < 1:
        raise BatchShapeError(f"the test fraction must lie between 0 and 1, not {test_fraction}")
    rng = np.random.default_rng(seed)
    test = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        if len(members) >= 2:
            take = min(len(members) - 1, max(1, round(test_fraction * len(members))))
            test.append(members[:take])
    test = np.sort(np.concatenate(test)) if test else np.array([], dtype=np.int64)
    train = np.setdiff1d(np.arange(len(labels)), test)
    if len(test) == 0 or len(np.unique(labels[train])) < 2:
        raise BatchShapeError(
            "too few labelled examples to split into training and test sets; use more samples"
        )
    return train, test


def knn_accuracy(
    train: torch.Tensor,
    train_labels: torch.Tensor,
    test: torch.Tensor,
    test_labels: torch.Tensor,
    k: int = 20,
) -> float:
    """Fraction of test examples whose cosine k-nearest-neighbour vote is their label."""
    k = min(k, len(train))
    train_unit = torch.nn.functional.normalize(train.to(torch.float32), dim=1)
    train_labels = train_labels.to(train.device, torch.int64)
    classes = int(max(train_labels.max(), test_labels.max())) + 1
    correct = 0
    for start in range(0, len(test), KNN_CHUNK):
        chunk = torch.nn.functional.normalize(test[start : start + KNN_CHUNK].float(), dim=1)
        similarity, nearest = (chunk @ train_unit.T).topk(k, dim=1)
        votes = torch.zeros(len(chunk), classes, device=train.device)
        votes.scatter_add_(1, train_labels[nearest], 1 + TIE_BREAK * similarity / k)
        predicted = votes.argmax(dim=1).cpu()
        correct += int((predicted == test_labels[start : start + KNN_CHUNK].cpu()).sum())
    return correct / len(test)


def linear_probe_accuracy(
    train: torch.Tensor,
    train_labels: torch.Tensor,
    test: torch.Tensor,
    test_labels: torch.Tensor,
    l2: float = 1e-3,
) -> float:
    """Test accuracy of the L2-regularised multinomial logistic regression fitted on train."""
    train, test = train.to(torch.float32), test.to(train.device, torch.float32)
    mean, std = train.mean(dim=0), train.std(dim=0).clamp_min(1e-6)
    x_train, x_test = (train - mean) / std, (test - mean) / std
    y_train = train_labels.to(train.device, torch.int64)
    classes = int(max(y_train.max(), test_labels.max())) + 1
    weight = torch.zeros(x_train.shape[1], classes, device=train.device, requires_grad=True)
    bias = torch.zeros(classes, device=train.device, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [weight, bias], max_iter=PROBE_ITERATIONS, history_size=20, line_search_fn="strong_wolfe"
    )

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        value = torch.nn.functional.cross_entropy(x_train @ weight + bias, y_train)
        value = value + l2 / 2 * weight.square().sum()
        value.backward()
        return value

    with torch.enable_grad():
        optimiser.step(loss)
    with torch.no_grad():
        predicted = (x_test @ weight + bias).argmax(dim=1).cpu()
    return float((predicted == test_labels.cpu()).float().mean())
