import sys

from chaos.harness import main

sys.exit(main())
