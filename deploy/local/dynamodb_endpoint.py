"""The local stack's DynamoDB-API endpoint: moto's server, with each item's
writes applied one at a time.

DynamoDB applies each request to an item atomically: of two conditional
writes racing for one item, exactly one succeeds. moto's server runs each
request on its own thread and evaluates a ConditionExpression, then applies
the update, with nothing held in between (moto 5.2.5,
moto/dynamodb/models/__init__.py, `update_item`), so under load both racers
win. Measured here: 8 threads racing `attribute_not_exists` on one key, 41
of 300 keys had more than one winner. The lease fencing that votewire is
tested for relies on that atomicity, so this launcher runs the writes to
one item (PutItem, UpdateItem, DeleteItem on one table and key) under that
item's lock, which is what DynamoDB guarantees. Reads, writes to other
items and moto's other services stay concurrent: one lock for every request
made a whole-table Scan hold up every lease renewal behind it, and under
the test suite's load renewals then came too late.

Usage: python dynamodb_endpoint.py [moto_server arguments]
"""

import json
import sys
import threading

from moto import server
from moto.dynamodb.responses import DynamoHandler

_SINGLE_ITEM_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}
_item_locks: dict = {}
_item_locks_guard = threading.Lock()
_call_action = DynamoHandler.call_action


def _item_lock(params):
    """The lock of the item a single-item write names."""
    key = params.get("Key") or params.get("Item") or {}
    name = (params.get("TableName"), json.dumps(key, sort_keys=True, default=str))
    with _item_locks_guard:
        return _item_locks.setdefault(name, threading.Lock())


def _atomic_call_action(self):
    action = self.get_endpoint_name(self.headers)
    if action not in _SINGLE_ITEM_WRITES:
        return _call_action(self)
    params = getattr(self, "params", None) or {}
    if action == "PutItem":
        # A put's item holds its key among its attributes; lock on the
        # whole item's key attributes as the table defines them.
        table = self.dynamodb_backend.tables.get(params.get("TableName"))
        if table is None:
            return _call_action(self)  # moto answers ResourceNotFound
        names = [k["AttributeName"] for k in table.schema]
        params = {
            "TableName": params.get("TableName"),
            "Key": {n: (params.get("Item") or {}).get(n) for n in names},
        }
    with _item_lock(params):
        return _call_action(self)


DynamoHandler.call_action = _atomic_call_action

if __name__ == "__main__":
    server.main(sys.argv[1:])
