"""The demo tasks as an importable app (``--app stem_pg.dev.demo_app:app``), for compose and trials.

The URL and namespace come from STEM_BROKER_URL and STEM_NAMESPACE.
"""

from stem_pg.dev.demo import build_demo_app

app = build_demo_app()
