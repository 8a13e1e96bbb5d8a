"""Model definitions; ``build_model`` maps a config name to a module."""
from dlperf.models.cifar_resnet import CifarResNet, arch_depth, cifar_model

__all__ = ["CifarResNet", "arch_depth", "cifar_model"]
