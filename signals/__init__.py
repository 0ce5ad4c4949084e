"""signals: an MLflow-centric model lifecycle for daily stock signals.

Importing the package has no side effects: no directories are created and no
MLflow tracking URI is set until a command asks for it.
"""

__version__ = "0.1.0"
