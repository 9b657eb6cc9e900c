"""`python -m agent_service` runs `firebox-agent`."""

import sys

from agent_service.main import main

sys.exit(main())
