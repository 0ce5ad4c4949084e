"""``mlflow run . -e generate``: runs :func:`signals.lifecycle.generate.main` with MLflow's string parameters."""

from signals.lifecycle.generate import main

if __name__ == "__main__":
    main()
