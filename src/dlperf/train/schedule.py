"""Learning-rate schedules in closed form.

The rate is a pure function of progress, so a resumed run needs no scheduler state and every study states
exactly what it stepped. ``step_per`` says whether progress counts iterations or whole epochs:
``epoch`` holds the rate constant within an epoch; ``iteration`` moves it every step (the MLP coursework calls
``CosineAnnealingLR.step()`` once per iteration, so its "T_max = 100" is 100 iterations).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Schedule:
    name: str = "constant"                  # constant | multistep | cosine
    step_per: str = "epoch"                 # epoch | iteration: the unit of t, milestones and t_max
    milestones: tuple[float, ...] = field(default_factory=tuple)   # multistep: where lr is multiplied by gamma
    gamma: float = 0.1
    t_max: float = 1.0                      # cosine: half period, in step_per units
    eta_min: float = 0.0

    def lr(self, base_lr: float, iteration: int, steps_per_epoch: int) -> float:
        """Learning rate for the step with 0-based global index ``iteration``."""
        t = iteration if self.step_per == "iteration" else iteration // steps_per_epoch
        if self.name == "constant":
            return base_lr
        if self.name == "multistep":
            return base_lr * self.gamma ** sum(t >= m for m in self.milestones)
        if self.name == "cosine":
            return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.t_max)) / 2
        raise ValueError(f"unknown schedule {self.name!r}")

    @classmethod
    def from_config(cls, cfg: dict) -> "Schedule":
        return cls(name=cfg.get("name", "constant"), step_per=cfg.get("step_per", "epoch"),
                   milestones=tuple(cfg.get("milestones", ())), gamma=cfg.get("gamma", 0.1),
                   t_max=cfg.get("t_max", 1.0), eta_min=cfg.get("eta_min", 0.0))
