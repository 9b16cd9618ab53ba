"""API keys, their grants (datasets, and event rules by source and licence) and the
audit log."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable
from typing import Any

from dcm.errors import Conflict, NotFound, ParameterError
from dcm.store._db import to_ts, ts_text
from dcm.store.access import ROLES, Principal
from dcm.store.models import ApiKey, AuditEntry, EventGrant
from dcm.store.repositories.base import Repository, _json, _now

#: SQL condition: dataset ``d`` is covered by event grant ``g`` (joined on the event).
#: A source matches itself and its ``dcm replay`` slices (``SOURCE#start/end``).
_RULE_MATCHES = (
    "(g.source IS NULL OR d.source = g.source "
    "OR substr(d.source, 1, length(g.source) + 1) = g.source || '#') "
    "AND (g.licence IS NULL OR lower(d.licence) = lower(g.licence))"
)


def _rule_text(field: str, value: str | None) -> str | None:
    """A source or licence of a grant rule: stripped; None (any) when not given."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        raise ParameterError(f"{field} of a grant must not be empty (leave it out for any)")
    return text


def _rule_detail(grant: EventGrant) -> dict[str, Any]:
    return {"event": grant.event, "source": grant.source, "licence": grant.licence}


class KeyRepository(Repository):
    """API keys (only their sha256 stored), grants of datasets and events to keys, the
    audit log."""

    # -- keys, grants, audit ---------------------------------------------------------------
    def create_key(
        self,
        name: str,
        *,
        role: str,
        grants: Iterable[int] = (),
        principal: Principal,
    ) -> tuple[ApiKey, str]:
        """Create an API key; returns the record and the clear token (shown once).

        Only the sha256 of the token is stored.
        """
        principal.require(principal.can_manage_keys(), "create API key")
        if role not in ROLES:
            raise ParameterError(f"unknown role {role!r} (use {', '.join(ROLES)})")
        grants = [int(g) for g in grants]
        for dataset_id in grants:
            self.get_dataset(dataset_id)
        token = "dcm_" + secrets.token_urlsafe(32)
        digest = hashlib.sha256(token.encode()).hexdigest()
        if self.db.scalar("SELECT id FROM api_keys WHERE name = :name", {"name": name}) is not None:
            raise Conflict(f"an API key named {name!r} exists")
        with self.db.transaction():
            key_id = self.db.scalar(
                "INSERT INTO api_keys (name, role, token_sha256, prefix, created_at) "
                "VALUES (:name, :role, :digest, :prefix, :created) RETURNING id",
                {
                    "name": name,
                    "role": role,
                    "digest": digest,
                    "prefix": token[:8],
                    "created": ts_text(_now()),
                },
            )
            self.db.executemany(
                "INSERT INTO grants (key_id, dataset_id) VALUES (:key, :dataset) "
                "ON CONFLICT DO NOTHING",
                [{"key": key_id, "dataset": g} for g in grants],
            )
            self.audit(
                principal,
                "key.create",
                f"key:{key_id}",
                {"name": name, "role": role, "grants": grants},
            )
        return self._key_by("id", int(key_id)), token

    def _key_by(self, column: str, value: Any) -> ApiKey:
        row = self.db.one(
            f"SELECT id, name, role, prefix, created_at, revoked_at FROM api_keys "
            f"WHERE {column} = :value",
            {"value": value},
        )
        if row is None:
            raise NotFound(f"no API key {value!r}")
        grants = frozenset(
            int(r[0])
            for r in self.db.query(
                "SELECT dataset_id FROM grants WHERE key_id = :key", {"key": row[0]}
            )
        )
        return ApiKey(
            id=int(row[0]),
            name=row[1],
            role=row[2],
            prefix=row[3],
            created_at=to_ts(row[4]),  # type: ignore[arg-type]
            revoked_at=to_ts(row[5]),
            grants=grants,
            event_grants=tuple(self.event_grants(int(row[0]))),
        )

    def get_key(self, key: int | str) -> ApiKey:
        """A key by id or name."""
        if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
            return self._key_by("id", int(key))
        return self._key_by("name", key)

    def list_keys(self) -> list[ApiKey]:
        rows = self.db.query("SELECT id FROM api_keys ORDER BY id")
        return [self._key_by("id", int(r[0])) for r in rows]

    def revoke_key(self, key: int | str, *, principal: Principal) -> ApiKey:
        """Revoke a key by id or name."""
        principal.require(principal.can_manage_keys(), "revoke API key")
        record = self.get_key(key)
        with self.db.transaction():
            self.db.execute(
                "UPDATE api_keys SET revoked_at = :at WHERE id = :id AND revoked_at IS NULL",
                {"at": ts_text(_now()), "id": record.id},
            )
            self.audit(principal, "key.revoke", f"key:{record.id}", {"name": record.name})
        return self.get_key(record.id)

    def grant(self, key: int | str, dataset_id: int, *, principal: Principal) -> None:
        principal.require(principal.can_manage_keys(), "grant dataset")
        record, dataset = self.get_key(key), self.get_dataset(dataset_id)
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO grants (key_id, dataset_id) VALUES (:key, :dataset) "
                "ON CONFLICT DO NOTHING",
                {"key": record.id, "dataset": dataset.id},
            )
            self.audit(principal, "grant.add", f"key:{record.id}", {"dataset": dataset.id})

    def revoke_grant(self, key: int | str, dataset_id: int, *, principal: Principal) -> None:
        principal.require(principal.can_manage_keys(), "revoke grant")
        record = self.get_key(key)
        with self.db.transaction():
            self.db.execute(
                "DELETE FROM grants WHERE key_id = :key AND dataset_id = :dataset",
                {"key": record.id, "dataset": int(dataset_id)},
            )
            self.audit(principal, "grant.remove", f"key:{record.id}", {"dataset": dataset_id})

    def authenticate(self, token: str | None) -> Principal:
        """The principal of a clear API key; anonymous for None.

        Raises :class:`~dcm.errors.AuthenticationRequired` for an unknown or revoked key.
        """
        from dcm.errors import AuthenticationRequired

        if token is None or token == "":
            return Principal.anonymous()
        digest = hashlib.sha256(token.strip().encode()).hexdigest()
        row = self.db.one(
            "SELECT id, name, role, revoked_at FROM api_keys WHERE token_sha256 = :digest",
            {"digest": digest},
        )
        if row is None or row[3] is not None:
            raise AuthenticationRequired("unknown or revoked API key")
        return Principal(
            name=row[1], role=row[2], key_id=int(row[0]), grants=self.granted_datasets(row[0])
        )

    def granted_datasets(self, key_id: int) -> frozenset[int]:
        """Ids of the datasets a key reads by grant: granted one by one, or matching one of
        its event grants now (so datasets ingested after the grant are included)."""
        rows = self.db.query(
            "SELECT dataset_id FROM grants WHERE key_id = :key "
            "UNION "
            "SELECT d.id FROM event_grants g JOIN datasets d ON d.event_id = g.event_id "
            f"WHERE g.key_id = :key AND {_RULE_MATCHES}",
            {"key": int(key_id)},
        )
        return frozenset(int(r[0]) for r in rows)

    # -- event grants ------------------------------------------------------------------------
    def event_grants(self, key_id: int | None = None) -> list[EventGrant]:
        """Event grants (of one key), oldest first."""
        where = "" if key_id is None else "WHERE g.key_id = :key "
        rows = self.db.query(
            "SELECT g.id, g.key_id, g.event_id, e.name, g.source, g.licence, g.created_at "
            f"FROM event_grants g JOIN events e ON e.id = g.event_id {where}ORDER BY g.id",
            {} if key_id is None else {"key": int(key_id)},
        )
        return [
            EventGrant(
                id=int(r[0]),
                key_id=int(r[1]),
                event_id=int(r[2]),
                event=r[3],
                source=r[4],
                licence=r[5],
                created_at=to_ts(r[6]),  # type: ignore[arg-type]
            )
            for r in rows
        ]

    def grant_event(
        self,
        key: int | str,
        event: str | int,
        *,
        source: str | None = None,
        licence: str | None = None,
        principal: Principal,
    ) -> tuple[EventGrant, bool]:
        """Let ``key`` read the datasets of ``event`` (only those of ``source`` and/or
        ``licence`` when given), datasets ingested later included.

        Returns the grant and whether it is new (granting the same rule twice changes
        nothing and is not audited again).
        """
        principal.require(principal.can_manage_keys(), "grant event")
        source, licence = _rule_text("source", source), _rule_text("licence", licence)
        record, ev = self.get_key(key), self.get_event(event)
        rule = {"key": record.id, "event": ev.id, "source": source, "licence": licence}
        with self.db.transaction():
            found = self._find_event_grant(rule)
            if found is not None:
                return found, False
            self.db.execute(
                "INSERT INTO event_grants (key_id, event_id, source, licence, created_at) "
                "VALUES (:key, :event, :source, :licence, :created)",
                {**rule, "created": ts_text(_now())},
            )
            grant = self._find_event_grant(rule)
            assert grant is not None
            self.audit(principal, "grant.add", f"key:{record.id}", _rule_detail(grant))
        return grant, True

    def revoke_event_grant(
        self,
        key: int | str,
        event: str | int,
        *,
        source: str | None = None,
        licence: str | None = None,
        principal: Principal,
    ) -> EventGrant:
        """Remove the event grant of exactly this rule (event, source, licence) from
        ``key``; :class:`~dcm.errors.NotFound` when the key has no such grant."""
        principal.require(principal.can_manage_keys(), "revoke grant")
        source, licence = _rule_text("source", source), _rule_text("licence", licence)
        record, ev = self.get_key(key), self.get_event(event)
        rule = {"key": record.id, "event": ev.id, "source": source, "licence": licence}
        with self.db.transaction():
            grant = self._find_event_grant(rule)
            if grant is None:
                held = [g.describe() for g in self.event_grants(record.id) if g.event_id == ev.id]
                wanted = EventGrant(0, record.id, ev.id, ev.name, source, licence, _now())
                raise NotFound(
                    f"key {record.name!r} has no grant on {wanted.describe()}"
                    + (f" (it has: {'; '.join(held)})" if held else "")
                )
            self.db.execute("DELETE FROM event_grants WHERE id = :id", {"id": grant.id})
            self.audit(principal, "grant.remove", f"key:{record.id}", _rule_detail(grant))
        return grant

    def matching_datasets(self, grant: EventGrant) -> list[int]:
        """Ids of the datasets an event grant covers now."""
        rows = self.db.query(
            "SELECT d.id FROM event_grants g JOIN datasets d ON d.event_id = g.event_id "
            f"WHERE g.id = :grant AND {_RULE_MATCHES} ORDER BY d.id",
            {"grant": grant.id},
        )
        return [int(r[0]) for r in rows]

    def _find_event_grant(self, rule: dict[str, Any]) -> EventGrant | None:
        row = self.db.one(
            "SELECT id FROM event_grants WHERE key_id = :key AND event_id = :event "
            "AND coalesce(source, '') = coalesce(:source, '') "
            "AND coalesce(licence, '') = coalesce(:licence, '')",
            rule,
        )
        if row is None:
            return None
        return next(g for g in self.event_grants(rule["key"]) if g.id == int(row[0]))

    def audit(
        self, principal: Principal, action: str, target: str, detail: dict[str, Any] | None = None
    ) -> None:
        """Append an audit log entry."""
        self.db.execute(
            "INSERT INTO audit_log (at, key_id, actor, action, target, detail) "
            "VALUES (:at, :key, :actor, :action, :target, :detail)",
            {
                "at": ts_text(_now()),
                "key": principal.key_id,
                "actor": principal.name,
                "action": action,
                "target": target,
                "detail": _json(detail or {}),
            },
        )

    def audit_log(self, *, limit: int = 100) -> list[AuditEntry]:
        """Latest audit entries, newest first."""
        rows = self.db.query(
            "SELECT id, at, key_id, actor, action, target, detail FROM audit_log "
            "ORDER BY id DESC LIMIT :limit",
            {"limit": int(limit)},
        )
        return [
            AuditEntry(
                id=int(r[0]),
                at=to_ts(r[1]),  # type: ignore[arg-type]
                key_id=None if r[2] is None else int(r[2]),
                actor=r[3],
                action=r[4],
                target=r[5],
                detail=json.loads(r[6]) if r[6] else {},
            )
            for r in rows
        ]
