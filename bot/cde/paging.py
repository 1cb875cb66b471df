"""What the CDE API's pages really hold: learnt from its answers, since its maximum `limit`
is not documented.

The API may answer fewer runs than asked (a cap, told in `metadata.limit` or not at all), or
refuse a `limit` it finds too large with a 400. `PageSizing` keeps what the answers showed
for the client's life, so that each listing asks for what the API gives and tells a page
cut by a cap from the listing's last page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.cde.errors import CdeBadRequest
from bot.cde.models import RunPage

# The smallest page asked for after the API refused larger ones; below this, a 400 is
# not about the page size.
MIN_PAGE_SIZE = 10


@dataclass
class PageSizing:
    """`cap`: the largest page the API gives (None: not seen). `honoured`: the largest
    `limit` it has answered in full, so a shorter page under that limit is a listing's end.
    """

    cap: int | None = None
    honoured: int = 0

    def limit(self, wanted: int) -> int:
        """The `limit` to ask for when `wanted` runs are wanted."""
        return wanted if self.cap is None else max(1, min(wanted, self.cap))

    def learn(self, asked: int, page: RunPage) -> None:
        """Take in what a page asked with `limit=asked` shows of the API's page size."""
        told = page.info.limit
        if told is not None and 0 < told < asked:
            self._capped_at(told)
        elif page.size >= asked:
            self.honoured = max(self.honoured, asked)
        elif page.info.total is not None and page.info.offset + page.size < page.info.total:
            # Short of the asked limit, yet more to come: the API cut the page.
            self._capped_at(page.size)

    def capped_at(self, size: int) -> None:
        """A page of `size` runs was followed by more: the API gives `size` at most."""
        self._capped_at(size)

    def is_last(self, page: RunPage, asked: int, seen: int) -> bool | None:
        """Whether `page` (asked with `limit=asked`, `seen` items read so far) ends its
        listing: True or False when its answer tells; None when only the next page can
        tell (a short page, no `metadata.total`, and no page size learnt yet).
        """
        if page.size == 0:
            return True
        if page.info.total is not None:
            return seen >= page.info.total
        told = page.info.limit
        full = min(asked, told) if told is not None and told > 0 else asked
        if self.cap is not None:
            full = min(full, self.cap)
        if page.size >= full:
            return False
        if (told is not None and told >= asked) or asked <= self.honoured or \
                (self.cap is not None and asked >= self.cap):
            return True  # the API honours this limit: a shorter page is the last
        return None

    def smaller_after(self, refused: CdeBadRequest, asked: int) -> int | None:
        """The `limit` to try after the API refused `limit=asked` with a 400, or None when
        the 400 is about something else (another field) or the limit is already small.
        """
        fields = {name.lower() for name in refused.field_errors}
        if fields and "limit" not in fields:
            return None
        if asked <= MIN_PAGE_SIZE:
            return None
        said = refused.field_errors.get("limit") or str(refused)
        # "should be less than or equal to 50": take the API at its word when it says.
        numbers = [int(n) for n in re.findall(r"\d+", said) if MIN_PAGE_SIZE <= int(n) < asked]
        smaller = max(numbers) if numbers else max(MIN_PAGE_SIZE, asked // 2)
        self._capped_at(smaller)
        return smaller

    def _capped_at(self, size: int) -> None:
        if size > 0:
            self.cap = size if self.cap is None else min(self.cap, size)
