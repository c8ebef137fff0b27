"""The local stack's DynamoDB-API endpoint: moto's server, one DynamoDB
request at a time.

DynamoDB applies each request to an item atomically: of two conditional
writes racing for one item, exactly one succeeds. moto's server runs each
request on its own thread and evaluates a ConditionExpression, then applies
the update, with nothing held in between (moto 5.2.5,
moto/dynamodb/models/__init__.py, `update_item`), so under load both racers
win. Measured here: 8 threads racing `attribute_not_exists` on one key, 41
of 300 keys had more than one winner. The lease fencing that votewire is
tested for relies on exactly that atomicity, so this launcher runs every
DynamoDB action under one lock, which is what DynamoDB guarantees per item
and more. S3 and moto's other services are left concurrent.

Usage: python dynamodb_endpoint.py [moto_server arguments]
"""

import sys
import threading

from moto import server
from moto.dynamodb.responses import DynamoHandler

_ONE_REQUEST_AT_A_TIME = threading.Lock()
_call_action = DynamoHandler.call_action


def _serialized_call_action(self):
    with _ONE_REQUEST_AT_A_TIME:
        return _call_action(self)


DynamoHandler.call_action = _serialized_call_action

if __name__ == "__main__":
    server.main(sys.argv[1:])
