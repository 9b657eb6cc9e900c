"""`python -m executor_service` runs `firebox-executor`."""

import sys

from executor_service.main import main

sys.exit(main())
