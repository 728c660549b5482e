"""A fact's value (yes/no, a number, text) as a google.protobuf.Value: how both services
put a firm's profile facts on the wire (rules.v1.EnterpriseProfile.facts)."""

from __future__ import annotations

from google.protobuf import struct_pb2


def fact_value(value: bool | int | float | str) -> struct_pb2.Value:
    """`value` as a Value: a bool stays a bool, other numbers become numbers, anything
    else its text."""
    out = struct_pb2.Value()
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int | float):
        out.number_value = float(value)
    else:
        out.string_value = str(value)
    return out
