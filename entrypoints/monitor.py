"""``mlflow run . -e monitor``: runs :func:`signals.lifecycle.monitor.main` with MLflow's string parameters."""

from signals.lifecycle.monitor import main

if __name__ == "__main__":
    main()
