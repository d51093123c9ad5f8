"""The web app: load and warm the model once, then serve (see emotion/app/server.py).

    ./run.sh            (or: python app.py --help)
"""

import sys

from emotion.app.server import main

if __name__ == "__main__":
    sys.exit(main())
