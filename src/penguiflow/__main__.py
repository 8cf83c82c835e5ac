"""``python -m penguiflow``: the same command line as the ``penguiflow`` script."""

from penguiflow.cli import main

raise SystemExit(main())
