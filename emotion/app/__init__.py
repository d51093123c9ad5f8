"""What stands on the engine: the command line (cli), the web app (server, page, service,
render, tables), the settings both read once (settings) and output-folder housekeeping
(outputs)."""

import os

# Before gradio is imported anywhere below: otherwise launch() reports usage to outside hosts.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
