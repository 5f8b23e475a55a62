"""Settings of the sandbox gateway's own process: the service's settings, serving the sandbox only.

`make run` starts it on SANDBOX_PORT (Procfile: `sandbox`). It shares the service's
database and broker, as the embedded sandbox always has; it is a separate web server
so that the service's calls to it never wait for threads of the server making them.
"""

from merchant.settings import *  # noqa: F403

ROOT_URLCONF = "sandbox.site_urls"
