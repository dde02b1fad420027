"""Entry point: ``python -m reference_model ...`` (see :mod:`reference_model.cli`)."""
import sys

from .cli import main

sys.exit(main())
