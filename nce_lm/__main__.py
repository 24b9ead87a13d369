import sys

from nce_lm.cli import main

sys.exit(main())
