"""From a layer x layer matrix over many models to a map of the models.

Pure numpy on one measure's matrix block by block: ``block[i, j]`` compares
layer i of model A (in depth order) with layer j of model B. A measure is a
similarity (higher: more alike) or a distance (lower: more alike); every
function here takes ``distance`` and picks the right extreme, never forcing a
distance into 0..1.

- matched relative depth: the layers of the model with fewer layers, each
  paired with the other model's layer at the same fraction of its depth;
- a model x model dissimilarity: the mean over matched-depth pairs, as a
  distance (``1 - mean`` for a similarity whose maximum is 1);
- average-linkage clustering of that dissimilarity (scipy) and classical
  multidimensional scaling (Torgerson 1952) to two dimensions.
"""

from __future__ import annotations

import numpy as np


def same_depth(count: int, length: int) -> np.ndarray:
    """For each of ``count`` layers in depth order, the index among ``length`` layers at the
    same fraction of depth."""
    return np.round(np.arange(count) * (length - 1) / max(count - 1, 1)).astype(int)


def same_depth_row(block: np.ndarray) -> np.ndarray:
    """For each row of ``block``, its value at the column at the same fraction of depth."""
    rows, columns = block.shape
    return block[np.arange(rows), same_depth(rows, columns)]


def depth_pairs(rows: list[int], columns: list[int]) -> list[tuple[int, int]]:
    """Rows and columns at matched relative depth: as many pairs as the shorter list has
    entries, each with the entry of the other list at the same fraction of depth."""
    count = min(len(rows), len(columns))
    if count == 0:
        return []
    if count == 1:
        return [(rows[-1], columns[-1])]
    picks = [same_depth(count, len(x)) for x in (rows, columns)]
    return [(rows[i], columns[j]) for i, j in zip(*picks, strict=True)]


def matched_depth_curve(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The values of ``block`` at matched relative depth and their depths in [0, 1] (of the
    shorter side)."""
    pairs = depth_pairs(list(range(block.shape[0])), list(range(block.shape[1])))
    values = np.array([block[i, j] for i, j in pairs])
    depths = np.linspace(0, 1, len(pairs)) if len(pairs) > 1 else np.ones(1)
    return depths, values


def best_match_curve(block: np.ndarray, distance: bool) -> np.ndarray:
    """For each row (layer of A), the best value over the columns (layers of B): the minimum
    for a distance, the maximum for a similarity; NaN where a row has none."""
    best = np.full(block.shape[0], np.nan)
    defined = ~np.isnan(block).all(axis=1)
    best[defined] = (np.nanmin if distance else np.nanmax)(block[defined], axis=1)
    return best


def model_dissimilarity(
    matrix: np.ndarray, bounds: list[tuple[int, int]], distance: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The mean matched-depth value of every model pair (``bounds``: each model's rows),
    and the same as a dissimilarity (the value for a distance, 1 - value for a similarity),
    symmetrised, with a zero diagonal."""
    k = len(bounds)
    means = np.empty((k, k))
    for a, (a0, a1) in enumerate(bounds):
        for b, (b0, b1) in enumerate(bounds):
            means[a, b] = np.nanmean(matched_depth_curve(matrix[a0:a1, b0:b1])[1])
    dissimilarity = means if distance else 1 - means
    dissimilarity = (dissimilarity + dissimilarity.T) / 2
    np.fill_diagonal(dissimilarity, 0)
    return means, np.clip(dissimilarity, 0, None)


def cluster_order(dissimilarity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average-linkage clustering of a symmetric dissimilarity: the scipy linkage matrix and
    the order of the models along its dendrogram."""
    from scipy.cluster.hierarchy import leaves_list, linkage  # half a second to import
    from scipy.spatial.distance import squareform

    if len(dissimilarity) < 2:
        return np.empty((0, 4)), np.arange(len(dissimilarity))
    tree = linkage(squareform(dissimilarity, checks=False), method="average")
    return tree, leaves_list(tree)


def classical_mds(dissimilarity: np.ndarray, dimensions: int = 2) -> np.ndarray:
    """Torgerson's classical MDS: the top eigenvectors of ``-J D^2 J / 2`` (J centres)
    scaled by the square roots of their eigenvalues; ``(k, dimensions)`` coordinates whose
    distances approximate ``dissimilarity`` (exactly when it is Euclidean)."""
    k = len(dissimilarity)
    centre = np.eye(k) - np.full((k, k), 1 / k)
    inner = -centre @ (dissimilarity**2) @ centre / 2
    eigenvalues, eigenvectors = np.linalg.eigh(inner)
    top = np.argsort(eigenvalues)[::-1][:dimensions]
    scale = np.sqrt(np.clip(eigenvalues[top], 0, None))
    coordinates = np.zeros((k, dimensions))
    coordinates[:, : len(top)] = eigenvectors[:, top] * scale
    return coordinates
