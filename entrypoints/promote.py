"""``mlflow run . -e promote``: runs :func:`signals.lifecycle.promote.main` with MLflow's string parameters."""

import sys

from signals.lifecycle.promote import main

if __name__ == "__main__":
    sys.exit(main())
