"""Data-free distillation: generators, losses, contrastive inversion, progressive student, trainer."""
