"""``mlflow run . -e tune``: runs :func:`signals.lifecycle.tune.main` with MLflow's string parameters."""

from signals.lifecycle.tune import main

if __name__ == "__main__":
    main()
