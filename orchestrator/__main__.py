from __future__ import annotations

from orchestrator.cli.main import main

raise SystemExit(main())
