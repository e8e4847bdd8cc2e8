"""``python -m mmlaw_utils <command>``: the project's one command line (see mmlaw_utils.cli)."""

from mmlaw_utils.cli import main

raise SystemExit(main())
