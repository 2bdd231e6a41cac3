"""Where memory is kept.

The records database (turns, items, their history), the vector index, and the data
folder's lock.
"""
