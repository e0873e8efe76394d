import sys

from symgen.cli.commands import main

sys.exit(main())
