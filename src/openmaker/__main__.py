"""``python -m openmaker`` runs the command-line interface."""

from openmaker.cli.main import main

raise SystemExit(main())
