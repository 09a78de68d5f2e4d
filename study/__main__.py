"""`python -m study`: the same as `python -m study.run`."""

import sys

from study.run import main

sys.exit(main())
