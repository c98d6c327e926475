"""Pure tensor math for representational similarity: Gram matrices, HSIC, CKA, and the
measures beyond CKA (Procrustes shape metrics, SVCCA, PWCCA, mutual k-NN, RSA).

No I/O, no models, no command line: every function takes tensors (rows are
examples) and keeps their device. See docs/methods.md for the formulas.
"""

from repcompare.similarity.cca import CanonicalCorrelation, canonical_correlations, cca
from repcompare.similarity.checks import (
    BatchShapeError,
    DegenerateRepresentationError,
    NonFiniteActivationError,
)
from repcompare.similarity.cka import cka, cka_from_grams
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
    DEFAULT_RBF_MEDIAN,
    RBF_MEDIANS,
    centre_columns,
    gram,
    linear_gram,
    median_pairwise_distance,
    rbf_gram,
    rbf_sigma_squared,
)
from repcompare.similarity.hsic import hsic_biased, hsic_unbiased, u_centre
from repcompare.similarity.knn import DEFAULT_KNN_K, knn_indices, mutual_knn
from repcompare.similarity.measures import MEASURES, Invariances, MeasureSpec, measure_spec
from repcompare.similarity.minibatch import MinibatchCKA
from repcompare.similarity.procrustes import (
    angular_shape_metric,
    procrustes_distance,
    shape_alignment,
)
from repcompare.similarity.procrustes_stream import (
    StreamingProcrustes,
    procrustes_stream_bytes,
    procrustes_streamable,
)
from repcompare.similarity.pwcca import pwcca
from repcompare.similarity.result import SimilarityMatrix
from repcompare.similarity.rsa import average_ranks, rdm, rsa, rsa_from_rdms, spearman
from repcompare.similarity.sampling import fixed_sample
from repcompare.similarity.svcca import DEFAULT_SVCCA_KEEP, svcca, svd_reduce

__all__ = [
    "CKA_ESTIMATORS",
    "DEFAULT_KNN_K",
    "DEFAULT_RBF_FRACTION",
    "DEFAULT_RBF_MEDIAN",
    "DEFAULT_SVCCA_KEEP",
    "MEASURES",
    "RBF_MEDIANS",
    "BatchShapeError",
    "BootstrapCKA",
    "CKAEstimator",
    "CanonicalCorrelation",
    "CrowdingStats",
    "DebiasedCKA",
    "DegenerateRepresentationError",
    "EstimatorSpec",
    "ExactLinearCKA",
    "Invariances",
    "MeasureSpec",
    "MemoryNeed",
    "MinibatchCKA",
    "NonFiniteActivationError",
    "SimilarityMatrix",
    "StreamingProcrustes",
    "angular_shape_metric",
    "average_ranks",
    "canonical_correlations",
    "cca",
    "centre_columns",
    "cka",
    "cka_from_grams",
    "estimator_spec",
    "fixed_sample",
    "gram",
    "hsic_biased",
    "hsic_unbiased",
    "knn_indices",
    "linear_gram",
    "measure_spec",
    "median_pairwise_distance",
    "mutual_knn",
    "procrustes_distance",
    "procrustes_stream_bytes",
    "procrustes_streamable",
    "pwcca",
    "rbf_gram",
    "rbf_sigma_squared",
    "rdm",
    "rsa",
    "rsa_from_rdms",
    "shape_alignment",
    "spearman",
    "svcca",
    "svd_reduce",
    "u_centre",
]
