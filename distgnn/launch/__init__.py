"""The distributed runtime (contract 3). For now: the collective halo exchange.

Importing this package loads neither Ray nor Arrow.
"""
from .exchange import CollectiveExchange, ExchangePlan, collective_part

__all__ = ["CollectiveExchange", "ExchangePlan", "collective_part"]
