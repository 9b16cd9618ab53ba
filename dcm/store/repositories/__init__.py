"""The store's repositories, one per concern; :class:`dcm.store.Store` is all of them."""

from dcm.store.repositories.alerts import AlertRepository
from dcm.store.repositories.events import EventRepository
from dcm.store.repositories.keys import KeyRepository
from dcm.store.repositories.measurements import MeasurementRepository
from dcm.store.repositories.results import ResultRepository

__all__ = [
    "AlertRepository",
    "EventRepository",
    "KeyRepository",
    "MeasurementRepository",
    "ResultRepository",
]
