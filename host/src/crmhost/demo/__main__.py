"""``python -m crmhost.demo``."""

import sys

from crmhost.demo.runner import main

sys.exit(main())
