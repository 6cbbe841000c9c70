"""Experiment tracking: a run logged to TensorBoard and MLflow as it trains.

mlplab.config.targets parses where (`--log`); mlplab.tracking.trackers makes the Trainer
callbacks that write there, behind the `tensorboard` and `mlflow` extras.
"""
