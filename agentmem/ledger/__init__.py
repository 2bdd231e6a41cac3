"""The fact ledger.

Facts extracted from turns, how a new fact relates to what is known (resolution), and
propagating a change to the items that still assert an old value.
"""
