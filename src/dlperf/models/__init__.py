"""Model definitions, one family a module: the CIFAR ResNets (:mod:`.cifar_resnet`, built by config name with
``cifar_model``; ImageNet-style ones in :mod:`.imagenet_resnet`), the coursework's VGGs (:mod:`.vgg_mlp`), the
transfer study's ImageNet backbones (:mod:`.backbones`) and the MobileNetV1-SSD (:mod:`.mobilenet_ssd`).
:mod:`.archs` reads what a plan needs off a model's name without importing torch."""
