"""GET JSON from an incident tool's REST API: 429s wait as long as Retry-After says, 5xx and dropped connections
back off exponentially, both a bounded number of times; then, and on a refused token, one `SourceError` line that
names the source and what to do."""

from __future__ import annotations

from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt

from bot.config import Settings
from bot.intake.importers.base import SourceError
from bot.retrying import status_code, wait_retry_after


def _transient(e: BaseException) -> bool:
    return isinstance(e, httpx.TransportError) or status_code(e) == 429 or status_code(e) >= 500


class ApiClient:
    """One source's API: `get(path_or_url, params)` -> the decoded JSON object."""

    def __init__(
        self,
        source: str,
        base_url: str,
        headers: dict[str, str],
        credential: str,
        settings: Settings,
        url_setting: str | None = None,
    ) -> None:
        self.source, self.credential, self.settings = source, credential, settings
        self.url_setting = url_setting or f"{source}_api_url"  # named when the source cannot be reached
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=settings.import_timeout_s
        )

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, params: dict[str, Any] | list[tuple[str, Any]] | None = None) -> dict[str, Any]:
        retrying = Retrying(
            retry=retry_if_exception(_transient),
            stop=stop_after_attempt(self.settings.import_retries),
            wait=wait_retry_after(multiplier=self.settings.import_backoff_s, max_s=30.0),
            reraise=True,
        )
        try:
            response = retrying(self._get, path, params)
        except httpx.HTTPStatusError as e:
            raise self._error(e.response) from e
        except httpx.TransportError as e:
            raise SourceError(
                f"{self.source}: cannot reach {self.http.base_url} ({type(e).__name__}: {e}); "
                f"check INCIBOT_{self.url_setting.upper()}"
            ) from e
        try:
            body = response.json()
        except ValueError as e:
            raise SourceError(f"{self.source}: {path} answered something that is not JSON") from e
        if not isinstance(body, dict):
            raise SourceError(f"{self.source}: {path} answered JSON that is not an object")
        return body

    def _get(self, path: str, params: Any) -> httpx.Response:
        response = self.http.get(path, params=params)
        response.raise_for_status()
        return response

    def _error(self, r: httpx.Response) -> SourceError:
        code = r.status_code
        if code in (401, 403):
            what = "refused the token" if code == 401 else "the token lacks a permission"
            return SourceError(f"{self.source}: {code}, {what}; it needs {self.credential}")
        if code == 429:
            return SourceError(
                f"{self.source}: still rate limited (429) after {self.settings.import_retries} tries; "
                "run the same command later: it resumes where it stopped"
            )
        if code >= 500:
            return SourceError(
                f"{self.source}: the API failed ({code}) {self.settings.import_retries} times in a row; "
                "run the same command later: it resumes where it stopped"
            )
        return SourceError(f"{self.source}: {r.request.url.path} answered {code}: {r.text[:200]}")
