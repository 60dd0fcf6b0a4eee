"""``python -m mailroom`` runs the ``mailroom`` command."""

from mailroom.cli import main

main()
