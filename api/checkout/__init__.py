"""The hosted checkout page (issue #8): server-rendered with Jinja2, a small static script for the
live state, the copy button and an optional browser wallet. `router` is what the app includes."""

from api.checkout.router import router

__all__ = ["router"]
