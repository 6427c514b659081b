"""The work behind the routes, by capability. Keyword-only functions that validate against the
domain, start, signal and query workflows, and read the read models; they never raise HTTP
errors: they raise `api.services.errors` (or the repositories' and domain's own errors), which
api/errors.py and the routers map to status codes."""
