"""``mlflow run . -e features``: runs :func:`signals.lifecycle.features.main` with MLflow's string parameters."""

from signals.lifecycle.features import main

if __name__ == "__main__":
    main()
