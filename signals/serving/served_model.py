"""Model code for MLflow's models-from-code logging: the pyfunc that serves signals.

MLflow executes this file when the model is loaded (in a fresh process by
``mlflow models serve``); ``signals`` is importable there because the package is logged
with the model through ``code_paths``.
"""

import mlflow

from signals.serving.pyfunc import SignalModel

mlflow.models.set_model(SignalModel())
