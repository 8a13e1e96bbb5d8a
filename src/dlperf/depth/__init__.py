"""The depth study (VGG-08 to VGG-38 on CIFAR-100): its report macros."""
