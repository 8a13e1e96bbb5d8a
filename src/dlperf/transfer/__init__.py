"""The transfer-learning study's pieces that are not a model or a training loop, apart by what they import:

* :mod:`.plan`: its runs and the settings each job reads (pure: the workflow plans with it);
* :mod:`.training`: the target data on the device and a seeded head (torch);
* :mod:`.backbone`: a backbone from its weights file with a new head (torch and torchvision);
* :mod:`.summary`: epoch timing and the summary's winner (pandas); :mod:`.values`: the report's macros.

Modes: ``finetune`` trains every layer of the pretrained network; ``feature_extractor`` trains only a new linear
head on the frozen backbone, either on cached features (the default: one forward pass per image, no augmentation)
or through the frozen backbone every epoch (only timed, to measure what the cache saves).
"""
