"""Training: the Trainer and its saveable state, callbacks, engines, optimizers and
schedules, evaluation, and devices."""
