"""``python -m runner``: see ``runner.process``."""

import sys

from runner.bindings import use_bindings_only

use_bindings_only()  # before anything imports llama_cpp

from runner.process import main  # noqa: E402

sys.exit(main())
