"""`python -m monitor` is the same as the `driftmon` command."""

from monitor.cli import main

raise SystemExit(main())
