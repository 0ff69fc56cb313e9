"""`python -m core <command>`: runs core.cli.main and exits with its status (2 on a user error)."""
from core.cli import main

raise SystemExit(main())
