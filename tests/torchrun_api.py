"""cka, invariance and class-fit from the Python API, in one process or inside torchrun; rank 0
writes their JSON documents to the path given (see tests/test_cli_torchrun.py)."""

import json
import sys

import repcompare
from repcompare.distributed import current_job

COMMON = dict(data="builtin:96:32", image_size=32, batch_size=16, workers=0)

if __name__ == "__main__":
    results = {
        "cka": repcompare.cka(
            "timm:resnet18", "torchvision:resnet18", layers_a="blocks", bootstrap=10, **COMMON
        ),
        "cka exact": repcompare.cka(
            "timm:resnet18", "torchvision:resnet18", reduce="avgpool", estimator="exact", **COMMON
        ),
        "invariance": repcompare.invariance("timm:resnet18", augment="crop", **COMMON),
        "class_fit": repcompare.class_fit("timm:resnet18", reduce="avgpool", **COMMON),
    }
    job = current_job()
    if job.main:
        documents = {name: result.to_dict() for name, result in results.items()}
        with open(sys.argv[1], "w") as out:
            json.dump(documents | {"world": job.world}, out)
