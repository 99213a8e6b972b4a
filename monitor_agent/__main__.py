"""``python -m monitor_agent``."""

from monitor_agent.cli import main

raise SystemExit(main())
