import sys

from lpir.cli import main

sys.exit(main())
