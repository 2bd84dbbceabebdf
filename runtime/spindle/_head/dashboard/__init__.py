"""The web dashboard: pages served by the head's HTTP server, the browser login and the UI-only actions.

The data comes from the state API (spindle._head.state); this package only adds what a browser needs:
static pages (``static/``, shipped as package data, no build step), the token login that sets an
HttpOnly cookie, the CSRF rules for cookie-authenticated requests, and the kill-actor action.
"""
