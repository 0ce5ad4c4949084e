"""``mlflow run . -e main``: the whole lifecycle, :func:`signals.lifecycle.run.main`."""

from signals.lifecycle.run import main

if __name__ == "__main__":
    main()
