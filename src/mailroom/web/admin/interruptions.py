"""How an admin dependency answers in place of the route: it raises
:class:`AdminInterruption` with the response (a redirect to the login page, a 403 page, a
429), and the handler :func:`install_interruptions` adds to the app sends it as it is.

FastAPI's ``HTTPException`` would go through the API's JSON error handler; the admin pages
answer with pages and redirects.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response

__all__ = ["AdminInterruption", "install_interruptions"]


class AdminInterruption(Exception):  # noqa: N818 - not an error: an answer given early
    """Answer ``response`` instead of running the route."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def install_interruptions(app: FastAPI) -> None:
    """Make ``app`` answer an :class:`AdminInterruption` with its response."""

    async def answer(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AdminInterruption)  # noqa: S101 - registered for that type
        return exc.response

    app.add_exception_handler(AdminInterruption, answer)
