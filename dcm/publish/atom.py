"""Atom (RFC 4287) feeds of CAP alerts."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass

from dcm import __version__
from dcm.errors import ParameterError
from dcm.publish._values import iso_utc_scalar
from dcm.publish.cap import CAP_MIME, CapMessage

ATOM_NS = "http://www.w3.org/2005/Atom"
ATOM_MIME = "application/atom+xml"


@dataclass(frozen=True)
class AtomEntry:
    """One feed entry pointing to a CAP document at ``cap_url``.

    ``id`` must be a permanent IRI (a URL or ``urn:``); times naive = UTC.
    """

    id: str
    title: str
    updated: dt.datetime
    summary: str
    cap_url: str
    published: dt.datetime | None = None


def cap_entry(message: CapMessage, *, cap_url: str, entry_id: str | None = None) -> AtomEntry:
    """The feed entry of a CAP message: headline, sent time, description, link to its XML."""
    return AtomEntry(
        id=entry_id or cap_url,
        title=message.headline or message.event,
        updated=message.sent,
        summary=message.description or message.headline or message.event,
        cap_url=cap_url,
        published=message.sent,
    )


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def atom_feed(
    entries: Iterable[AtomEntry],
    *,
    feed_id: str,
    title: str,
    self_url: str,
    updated: dt.datetime | None = None,
    author: str = "dcm",
) -> bytes:
    """An Atom feed document (UTF-8 bytes) listing ``entries`` in the given order.

    ``updated`` defaults to the newest entry's time (or now when there are none);
    each entry links to its CAP document with ``rel="alternate"`` and type
    ``application/cap+xml``.
    """
    entries = list(entries)
    if not feed_id or not self_url:
        raise ParameterError("an Atom feed needs an id and a self URL")
    if updated is None:
        updated = max((e.updated for e in entries), default=dt.datetime.now(dt.UTC))
    # Plain tags under a default xmlns: ElementTree's default_namespace option
    # rejects the unqualified attributes Atom uses (rel, type, href).
    feed = ET.Element("feed", xmlns=ATOM_NS)
    _sub(feed, "id", feed_id)
    _sub(feed, "title", title)
    _sub(feed, "updated", iso_utc_scalar(updated))
    _sub(feed, "link", rel="self", type=ATOM_MIME, href=self_url)
    _sub(_sub(feed, "author"), "name", author)
    _sub(feed, "generator", "dcm", version=__version__)
    for entry in entries:
        if not entry.id:
            raise ParameterError("every Atom entry needs an id")
        item = _sub(feed, "entry")
        _sub(item, "id", entry.id)
        _sub(item, "title", entry.title)
        _sub(item, "updated", iso_utc_scalar(entry.updated))
        if entry.published is not None:
            _sub(item, "published", iso_utc_scalar(entry.published))
        _sub(item, "summary", entry.summary, type="text")
        _sub(item, "link", rel="alternate", type=CAP_MIME, href=entry.cap_url)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
