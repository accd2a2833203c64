"""DVC stage entry points, thin wrappers over the pipeline package: run as ``python -m stages.<name>`` (dvc.yaml), so
each imports the ``pipeline`` next to it (a queued experiment's copy), not the one the venv points at."""
