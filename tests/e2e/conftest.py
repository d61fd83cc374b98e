"""Browser tests: Playwright drives Debian's chromium (/usr/bin/chromium) against live_server.

Their fixtures (browser_type_launch_args, screenshot, login) are in tests/conftest.py: browser
tests of other apps use them too.
"""
