"""``python -m opsrail`` is the ``opsrail`` command."""

from opsrail.cli import main

main()
