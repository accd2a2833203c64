"""``python -m pipeline.leaderboard merge [--json FILE] [--out FILE.csv] [--wide]``."""

import sys

from pipeline.leaderboard.merge import main

sys.exit(main())
