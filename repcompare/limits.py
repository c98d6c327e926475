"""Defaults and limits that several layers share, in a module that imports nothing (so that
``repcompare.options``, and the command line's ``--help``, need no torch)."""

DEFAULT_BATCH_SIZE = 64  # images per batch and per CKA minibatch
DEFAULT_INIT_SEED = 0  # the seed of a model built without weights
DEFAULT_TOKEN_CAP = 1024  # token rows kept per batch with --reduce tokens
MAX_IMAGE_SIZE = 4096  # 4096 x 4096 x 3 float32 is 200 MB an image, far past any model's
DEFAULT_RBF_FRACTION = 0.8  # RBF bandwidth as a fraction of the median distance
DEFAULT_RBF_MEDIAN = "all"  # the median over all n x n squared distances (Kornblith et al.)
DEFAULT_SAMPLE = 1024  # images of the fixed sample of measures beyond CKA
