"""CAP alert messages issued for outages."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from dcm.errors import NotFound, ParameterError
from dcm.store._db import to_ts, ts_text
from dcm.store.models import MSG_TYPES, AlertMessage
from dcm.store.repositories.base import Repository, _json


class AlertRepository(Repository):
    """CAP messages (Alert, Update, Cancel) in the order they were issued."""

    # -- alerts --------------------------------------------------------------------------
    def add_alert_message(self, message: AlertMessage) -> None:
        """Store one CAP message (identifiers are unique: Conflict otherwise)."""
        if message.msg_type not in MSG_TYPES:
            raise ParameterError(f"unknown CAP msgType {message.msg_type!r}")
        with self.db.transaction():
            seq = self.db.scalar("SELECT coalesce(max(seq), 0) + 1 FROM alerts")
            self.db.execute(
                "INSERT INTO alerts (identifier, event_id, outage_id, network, msg_type, sent, "
                "refs, geojson, properties, seq) VALUES (:identifier, :event, :outage, :network, "
                ":msg_type, :sent, :refs, :geojson, :properties, :seq)",
                {
                    "identifier": message.identifier,
                    "event": message.event_id,
                    "outage": message.outage_id,
                    "network": message.network,
                    "msg_type": message.msg_type,
                    "sent": ts_text(message.sent),
                    "refs": _json(list(message.references)),
                    "geojson": _json(message.geometry),
                    "properties": _json(message.properties),
                    "seq": int(seq),
                },
            )

    _ALERT_SQL = (
        "SELECT identifier, event_id, outage_id, network, msg_type, sent, refs, geojson, "
        "properties FROM alerts"
    )

    @staticmethod
    def _alert(row: Sequence[Any]) -> AlertMessage:
        return AlertMessage(
            identifier=row[0],
            event_id=int(row[1]),
            outage_id=row[2],
            network=row[3],
            msg_type=row[4],
            sent=to_ts(row[5]),  # type: ignore[arg-type]
            references=tuple(json.loads(row[6])),
            geometry=json.loads(row[7]),
            properties=json.loads(row[8]),
        )

    def alert_messages(
        self, event: str | int | None = None, *, outage_id: str | None = None
    ) -> list[AlertMessage]:
        """Stored CAP messages (of one event / outage), oldest first."""
        where: list[str] = []
        params: dict[str, Any] = {}
        if event is not None:
            where.append("event_id = :event")
            params["event"] = self.event_id(event)
        if outage_id is not None:
            where.append("outage_id = :outage")
            params["outage"] = outage_id
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self.db.query(f"{self._ALERT_SQL}{clause} ORDER BY seq", params)
        return [self._alert(r) for r in rows]

    def alert_message(self, identifier: str) -> AlertMessage:
        """One CAP message by identifier; NotFound otherwise."""
        row = self.db.one(f"{self._ALERT_SQL} WHERE identifier = :id", {"id": identifier})
        if row is None:
            raise NotFound(f"no alert {identifier!r}")
        return self._alert(row)
