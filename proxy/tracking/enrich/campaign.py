"""Campaign parameters: ``utm_*`` and ad click ids from the landing URL's query.

Pure. Query values arrive URL-decoded (``parse_qsl``: ``+`` is already a space);
utm values are stripped and lower-cased so ``Newsletter`` and ``newsletter`` count
as one campaign. Parameter names match case-insensitively. The first non-empty
occurrence of each key wins.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

UTM_KEYS = frozenset({"source", "medium", "campaign", "term", "content"})

# GA4's "paid" medium regex (Paid Search / Paid Social / Paid Other).
PAID_MEDIUM = re.compile(r"^(.*cp.*|ppc|retargeting|paid.*)$")


@dataclass(frozen=True, slots=True)
class ClickId:
    """One entry of ``config/campaigns.json`` ``click_ids``."""

    network: str
    kind: str  # search | social | display: the paid channel when utm_medium is absent
    paid: bool  # a click id without utm_medium implies a paid medium


def load_click_ids(data: Mapping[str, Any]) -> dict[str, ClickId]:
    return {
        name.lower(): ClickId(entry["network"], entry["kind"], bool(entry.get("paid", True)))
        for name, entry in data["click_ids"].items()
    }


def extract_utm(
    query: list[tuple[str, str]], click_ids: Mapping[str, ClickId]
) -> tuple[dict[str, str], ClickId | None]:
    """``(utm, click)``: the event's ``utm`` object (present keys only) and the click
    id's data when one is present."""
    utm: dict[str, str] = {}
    click: ClickId | None = None
    for raw_key, raw_value in query:
        key = raw_key.lower()
        if key.startswith("utm_"):
            name = key[4:]
            if name in UTM_KEYS and name not in utm:
                value = raw_value.strip().lower()
                if value:
                    utm[name] = value
        elif click is None and key in click_ids:
            value = raw_value.strip()
            if value:
                click = click_ids[key]
                utm["click_id"] = value
                utm["click_id_network"] = click.network
    return utm, click


def is_paid(utm: Mapping[str, str], click: ClickId | None) -> bool:
    """A paid utm_medium, or a paid click id with no utm_medium at all."""
    medium = utm.get("medium")
    if medium is not None:
        return PAID_MEDIUM.match(medium) is not None
    return click is not None and click.paid
