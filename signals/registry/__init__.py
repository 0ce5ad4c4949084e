"""The MLflow Model Registry as this product uses it: versions, the champion / challenger
aliases, promotion, rollback and history (``client``), and the promotion gate (``gate``)."""
