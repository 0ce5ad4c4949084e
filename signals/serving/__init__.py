"""Inference: :class:`~signals.serving.predictor.SignalPredictor` (booster + calibrator, no
MLflow) and the MLflow pyfunc model built around it (``pyfunc``, ``served_model``)."""
