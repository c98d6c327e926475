"""Seeded random-init checkpoints saved the way users save them (``torch.save`` of a state dict)."""

from pathlib import Path

import timm
import torch
import torchvision


def seeded_timm_resnet18(path: Path, seed: int = 0) -> str:
    """Save a timm ResNet-18 initialised under ``seed`` to ``path``; its MODEL spec."""
    torch.manual_seed(seed)
    torch.save(timm.create_model("resnet18").state_dict(), path)
    return f"timm:resnet18@{path}"


def seeded_torchvision_resnet18(path: Path, seed: int = 0) -> str:
    """Save a torchvision ResNet-18 initialised under ``seed`` to ``path``; its MODEL spec."""
    torch.manual_seed(seed)
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return f"torchvision:resnet18@{path}"
