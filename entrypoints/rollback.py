"""``mlflow run . -e rollback``: runs :func:`signals.lifecycle.rollback.main` with MLflow's string parameters."""

import sys

from signals.lifecycle.rollback import main

if __name__ == "__main__":
    sys.exit(main())
