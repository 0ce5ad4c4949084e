"""MLflow project entry points: one thin module per ``MLproject`` entry point.

``python -m entrypoints.<step>`` parses MLflow's string parameters with
:mod:`signals.lifecycle.params` (the same parsers the ``signals`` CLI uses) and runs
:mod:`signals.lifecycle.<step>`. Nothing else lives here: the steps, and what they share, are
part of the package.
"""
