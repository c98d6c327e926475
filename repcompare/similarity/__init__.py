"""Pure tensor math for representational similarity: Gram matrices, HSIC, CKA.

No I/O, no models, no command line: every function takes tensors (rows are
examples) and keeps their device. See docs/methods.md for the formulas.
"""

from repcompare.similarity.checks import BatchShapeError, NonFiniteActivationError
from repcompare.similarity.cka import DegenerateRepresentationError, cka, cka_from_grams
from repcompare.similarity.crowding import CrowdingStats
from repcompare.similarity.debiased import DebiasedCKA
from repcompare.similarity.estimators import (
    CKA_ESTIMATORS,
    BootstrapCKA,
    CKAEstimator,
    EstimatorSpec,
    MemoryNeed,
    estimator_spec,
)
from repcompare.similarity.feature_space import ExactLinearCKA
from repcompare.similarity.gram import (
    DEFAULT_RBF_FRACTION,
    centre_columns,
    gram,
    linear_gram,
    median_pairwise_distance,
    rbf_gram,
)
from repcompare.similarity.hsic import hsic_biased, hsic_unbiased, u_centre
from repcompare.similarity.minibatch import MinibatchCKA
from repcompare.similarity.result import SimilarityMatrix

__all__ = [
    "CKA_ESTIMATORS",
    "DEFAULT_RBF_FRACTION",
    "BatchShapeError",
    "BootstrapCKA",
    "CKAEstimator",
    "CrowdingStats",
    "DebiasedCKA",
    "DegenerateRepresentationError",
    "EstimatorSpec",
    "ExactLinearCKA",
    "MemoryNeed",
    "MinibatchCKA",
    "NonFiniteActivationError",
    "SimilarityMatrix",
    "centre_columns",
    "cka",
    "cka_from_grams",
    "estimator_spec",
    "gram",
    "hsic_biased",
    "hsic_unbiased",
    "linear_gram",
    "median_pairwise_distance",
    "rbf_gram",
    "u_centre",
]
