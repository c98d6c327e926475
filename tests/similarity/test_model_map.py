"""The model map: matched depth, best matches for similarities and distances, the model x
model dissimilarity, clustering and classical MDS against known answers."""

import numpy as np

from repcompare.similarity.model_map import (
    best_match_curve,
    classical_mds,
    cluster_order,
    depth_pairs,
    matched_depth_curve,
    model_dissimilarity,
)


def test_depth_pairs_match_relative_depth():
    assert depth_pairs([0, 1, 2, 3], [0, 1, 2, 3]) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert depth_pairs([0, 1, 2], [10, 11, 12, 13, 14]) == [(0, 10), (1, 12), (2, 14)]
    assert depth_pairs([5], [7, 8]) == [(5, 8)]
    assert depth_pairs([], [1]) == []


def test_matched_depth_takes_the_cells_at_the_same_fraction_of_depth():
    block = np.arange(15, dtype=float).reshape(3, 5)
    depths, values = matched_depth_curve(block)
    np.testing.assert_array_equal(values, [block[0, 0], block[1, 2], block[2, 4]])
    np.testing.assert_array_equal(depths, [0, 0.5, 1])


def test_best_match_is_the_maximum_of_a_similarity_and_the_minimum_of_a_distance():
    block = np.array([[0.2, 0.9, 0.5], [np.nan, np.nan, np.nan], [0.7, np.nan, 0.1]])
    np.testing.assert_array_equal(best_match_curve(block, distance=False), [0.9, np.nan, 0.7])
    np.testing.assert_array_equal(best_match_curve(block, distance=True), [0.2, np.nan, 0.1])


def test_model_dissimilarity_is_one_minus_the_mean_matched_similarity():
    rng = np.random.default_rng(0)
    matrix = rng.uniform(size=(5, 5))
    bounds = [(0, 2), (2, 5)]
    means, dissimilarity = model_dissimilarity(matrix, bounds, distance=False)
    across = np.mean([matrix[0, 2], matrix[1, 4]])  # model 0 has 2 layers: depths 0 and 1
    assert means[0, 1] == across
    assert (
        dissimilarity[0, 1]
        == dissimilarity[1, 0]
        == 1 - (across + np.mean([matrix[2, 0], matrix[4, 1]])) / 2
    )
    assert dissimilarity[0, 0] == 0
    means, distances = model_dissimilarity(matrix, bounds, distance=True)
    assert distances[0, 1] == (across + np.mean([matrix[2, 0], matrix[4, 1]])) / 2


def test_clustering_puts_close_models_together():
    points = np.array([0.0, 0.1, 5.0, 5.2, 0.05])
    dissimilarity = np.abs(points[:, None] - points[None, :])
    tree, order = cluster_order(dissimilarity)
    assert tree.shape == (4, 4)
    groups = [set(order[:3]), set(order[3:])]
    assert {0, 1, 4} in groups and {2, 3} in groups


def test_classical_mds_recovers_euclidean_distances():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(6, 2))
    distances = np.linalg.norm(points[:, None] - points[None, :], axis=-1)
    coordinates = classical_mds(distances)
    recovered = np.linalg.norm(coordinates[:, None] - coordinates[None, :], axis=-1)
    np.testing.assert_allclose(recovered, distances, atol=1e-10)
