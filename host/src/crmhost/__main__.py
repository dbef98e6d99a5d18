"""``python -m crmhost``: the same as the ``crmhost`` command."""

from crmhost.cli import main

main()
