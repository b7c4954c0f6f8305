"""``python -m training`` is the ``leadscore`` command."""

from training.cli import main

main()
