"""``mlflow run . -e register``: runs :func:`signals.lifecycle.register.main` with MLflow's string parameters."""

import sys

from signals.lifecycle.register import main

if __name__ == "__main__":
    sys.exit(main())
