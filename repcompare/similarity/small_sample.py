"""When a measure cannot be trusted at the number of images it sees against the layers'
widths (methods.md, "Small n against width"), said before any work.

With n images the centred rows span at most n - 1 dimensions, so:

- SVCCA and PWCCA (CCA family) are exactly 1 for any two layers once the wider one has
  n - 1 features or more (it spans every direction of the other); refused. Below ten
  images per feature they are unstable (Raghu et al. keep n >> width); warned.
- The Procrustes distance and the angular shape metric are 0 for any two layers at n = 2
  (two points are alike up to rotation and scale); refused. Once a layer has as many
  features as images they shrink towards 0; warned.
- RSA correlates the n (n - 1) / 2 entries of two dissimilarity matrices by rank:
  undefined below 4 images; refused.
- Mutual k-NN needs more than k images (every image has k other neighbours); refused.
- Linear CKA with the biased estimator (``exact``) is biased upwards when n is not much
  larger than the width (Murphy et al. 2024); warned, naming the debiased estimators.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from repcompare.similarity.knn import DEFAULT_KNN_K

CCA_FAMILY = ("svcca", "pwcca")
SHAPE = ("procrustes", "angular")
IMAGES_PER_FEATURE = 10  # CCA below this many images per feature is unstable
RSA_MIN_IMAGES = 4


@dataclass(frozen=True)
class SampleCaveat:
    """What is wrong with ``measure`` at this n: ``refuse`` (its values would be constant
    or undefined) or a warning; ``sentence`` for the terminal, ``short`` for titles."""

    measure: str
    refuse: bool
    sentence: str
    short: str


def sample_caveat(
    measure: str, n: int, widths: Sequence[int], estimator: str | None = None
) -> SampleCaveat | None:
    """The caveat of ``measure`` over ``n`` images of layers ``widths`` (None: none).
    ``estimator`` is the CKA estimator when ``measure`` is cka."""
    widest = max(widths)
    fix = "use more images (--num-samples, --sample) or narrower layers (--reduce avgpool)"
    seen = f"{n} images against layers up to {widest:,} features wide"
    if measure in CCA_FAMILY:
        if widest >= n - 1:
            return SampleCaveat(
                measure,
                True,
                f"--measure {measure} is 1 for any two layers on {seen} (the widest spans every "
                f"direction); {fix}",
                "",
            )
        if n < IMAGES_PER_FEATURE * widest:
            return SampleCaveat(
                measure,
                False,
                f"--measure {measure} is unstable on {seen} (fewer than {IMAGES_PER_FEATURE} "
                f"images per feature): values are biased towards 1; {fix}",
                f"biased: {n} images, width up to {widest:,}",
            )
    if measure in SHAPE:
        if n < 3:
            sentence = f"--measure {measure} is 0 for any two layers on {n} images; {fix}"
            return SampleCaveat(measure, True, sentence, "")
        if widest >= n:
            return SampleCaveat(
                measure,
                False,
                f"--measure {measure} shrinks towards 0 on {seen}; {fix}",
                f"biased: {n} images, width up to {widest:,}",
            )
    if measure == "rsa" and n < RSA_MIN_IMAGES:
        return SampleCaveat(
            measure,
            True,
            f"--measure rsa needs {RSA_MIN_IMAGES} images or more to rank dissimilarities; it "
            f"has {n}; use more images (--num-samples, --sample)",
            "",
        )
    if measure == "mutual-knn" and n <= DEFAULT_KNN_K:
        return SampleCaveat(
            measure,
            True,
            f"--measure mutual-knn compares each image's {DEFAULT_KNN_K} nearest neighbours and "
            f"needs more than {DEFAULT_KNN_K} images; it has {n}; use more images "
            "(--num-samples, --sample)",
            "",
        )
    if measure == "cka" and estimator == "exact" and widest >= n:
        return SampleCaveat(
            measure,
            False,
            f"--estimator exact (biased linear CKA) is biased upwards on {seen}; use "
            "--estimator debiased or minibatch, or more images",
            f"biased: {n} images, width up to {widest:,}",
        )
    return None
