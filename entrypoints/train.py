"""``mlflow run . -e train``: runs :func:`signals.lifecycle.train.main` with MLflow's string parameters."""

from signals.lifecycle.train import main

if __name__ == "__main__":
    main()
