"""Who may read and write what: roles, per-dataset grants and the :class:`Principal`.

Rules (the API enforces them at the HTTP layer through these methods; every store query
that returns rows also applies them):

* ``public`` datasets are readable by everyone, anonymous callers included;
* ``partner`` datasets by partners holding a grant for them, and by analysts and admins;
* ``restricted`` datasets only by keys granted that dataset (admins read everything);
* a grant names a dataset, or an event with optionally a source and/or a licence: the
  key then reads every matching dataset of that event, those ingested later included
  (resolved when the key authenticates, so :attr:`Principal.grants` holds dataset ids);
* derived layers (outages, cells, grid) are computed from all data; the grid layer hides
  hexes with fewer than ``k_anonymity`` distinct devices from viewers and partners;
* the hashed ``device`` column is returned to admins only;
* partners may ingest into events, analysts also create events and run updates, admins
  also manage keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dcm.errors import AuthenticationRequired, PermissionDenied

if TYPE_CHECKING:
    from dcm.store.models import Dataset, Event

#: Roles from least to most powerful.
ROLES = ("viewer", "partner", "analyst", "admin")


def role_rank(role: str) -> int:
    """Position of ``role`` in :data:`ROLES` (raises ValueError for an unknown role)."""
    return ROLES.index(role)


@dataclass(frozen=True)
class Principal:
    """The caller of a store operation: an API key's identity, role and dataset grants.

    ``key_id`` is None for the anonymous caller and for the local operator
    (:meth:`system`, the CLI run by whoever owns the data directory).
    """

    name: str
    role: str
    key_id: int | None = None
    grants: frozenset[int] = field(default_factory=frozenset)
    authenticated: bool = True

    def __post_init__(self) -> None:
        role_rank(self.role)

    @classmethod
    def anonymous(cls) -> Principal:
        """A caller without a key: reads public data and derived layers only."""
        return cls(name="anonymous", role="viewer", authenticated=False)

    @classmethod
    def system(cls) -> Principal:
        """The local operator (CLI on the machine holding the store): an admin."""
        return cls(name="system", role="admin")

    def at_least(self, role: str) -> bool:
        return role_rank(self.role) >= role_rank(role)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def can_read_dataset(self, dataset: Dataset) -> bool:
        """Whether this caller may read the rows of ``dataset``."""
        return self.can_read_visibility(dataset.visibility, dataset.id)

    def can_read_visibility(self, visibility: str, dataset_id: int) -> bool:
        """The read rule for a dataset known only by its visibility and id."""
        if self.is_admin or visibility == "public":
            return True
        if visibility == "partner":
            return self.at_least("analyst") or (
                self.at_least("partner") and dataset_id in self.grants
            )
        return dataset_id in self.grants  # restricted: an explicit grant only

    def sees_devices(self) -> bool:
        """Whether hashed device ids may be returned (admins only)."""
        return self.is_admin

    def applies_k_anonymity(self) -> bool:
        """Whether sparse grid hexes are hidden from this caller."""
        return not self.at_least("analyst")

    def can_ingest(self, event: Event | None = None) -> bool:
        """Whether this caller may add data to ``event``."""
        return self.authenticated and self.at_least("partner")

    def can_write(self, event: Event | None = None) -> bool:
        """Whether this caller may create or change events and run updates."""
        return self.authenticated and self.at_least("analyst")

    def can_manage_keys(self) -> bool:
        return self.authenticated and self.is_admin

    def require(self, allowed: bool, action: str) -> None:
        """Raise :class:`AuthenticationRequired` / :class:`PermissionDenied` unless allowed."""
        if allowed:
            return
        if not self.authenticated:
            raise AuthenticationRequired(f"{action}: an API key is required")
        raise PermissionDenied(f"{action}: not allowed for role {self.role!r} ({self.name})")
